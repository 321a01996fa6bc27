package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestNoteKeyHash: the key a checkpoint was signed with is read from its
// note without verifying it, so a leader notices a new signing key even
// when the old one is no longer pinned.
func TestNoteKeyHash(t *testing.T) {
	key, err := trust.GenerateSigningKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := trust.SignCheckpoint(key, trust.Checkpoint{Site: "alpha", Size: 3, Root: trust.Hash{7}})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := noteKeyHash(msg, "alpha"); !ok || h != uint32(key.ID()) {
		t.Fatalf("key hash = %08x, %v; want %s", h, ok, key.ID())
	}
	if _, ok := noteKeyHash(msg, "bravo"); ok {
		t.Fatal("found a signature of bravo on alpha's checkpoint")
	}
	if _, ok := noteKeyHash([]byte("not a note"), "alpha"); ok {
		t.Fatal("found a key in garbage")
	}
}

// TestCheckRelayedCheckpoint: the leader takes a relayed checkpoint only
// if its note is signed by a pinned key and states the command's fields.
func TestCheckRelayedCheckpoint(t *testing.T) {
	key, _ := trust.GenerateSigningKey("bravo")
	other, _ := trust.GenerateSigningKey("bravo") // not pinned
	dec, _ := trust.GenerateDecryptionKey("bravo")
	ring, err := trust.ParseKeyring(trust.PublicLines(key.Public(), dec.Public()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Site: "alpha", Sites: []SiteConfig{{Name: "alpha"}, {Name: "bravo"}}}
	a := &auditor{cfg: cfg, ring: ring}
	cp := trust.Checkpoint{Site: "bravo", Size: 5, Root: trust.Hash{1}}
	good, _ := trust.SignCheckpoint(key, cp)
	unpinned, _ := trust.SignCheckpoint(other, cp)
	if err := a.checkRelayed(&queue.CheckpointCmd{Site: "bravo", Size: 5, Root: cp.Root, Note: good}); err != nil {
		t.Fatal(err)
	}
	// apply no longer reads the configured sites: checkRelayed does.
	if err := (&auditor{cfg: &Config{Site: "alpha", Sites: []SiteConfig{{Name: "alpha"}}}, ring: ring}).checkRelayed(
		&queue.CheckpointCmd{Site: "bravo", Size: 5, Root: cp.Root, Note: good}); err == nil || !strings.Contains(err.Error(), "not a configured site") {
		t.Fatalf("a checkpoint of an unconfigured site: %v", err)
	}
	// A cosignature of another pinned site, or an extension line: bytes
	// the site did not sign alone.
	alphaKey, _ := trust.GenerateSigningKey("alpha")
	alphaDec, _ := trust.GenerateDecryptionKey("alpha")
	ring2, err := trust.ParseKeyring(append(trust.PublicLines(key.Public(), dec.Public()), trust.PublicLines(alphaKey.Public(), alphaDec.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	a2 := &auditor{cfg: cfg, ring: ring2}
	cosigned, err := note.Sign(&note.Note{Text: cp.Text()}, trust.NoteSigner(key), trust.NoteSigner(alphaKey))
	if err != nil {
		t.Fatal(err)
	}
	extended, _ := note.Sign(&note.Note{Text: cp.Text() + "extra line\n"}, trust.NoteSigner(key))
	if err := a2.checkRelayed(&queue.CheckpointCmd{Site: "bravo", Size: 5, Root: cp.Root, Note: good}); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*queue.CheckpointCmd{
		"cosigned": {Site: "bravo", Size: 5, Root: cp.Root, Note: cosigned},
		"extended": {Site: "bravo", Size: 5, Root: cp.Root, Note: extended},
	} {
		if err := a2.checkRelayed(k); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
	canon, _, err := trust.CanonicalCheckpoint(cosigned, ring2)
	if err != nil || !bytes.HasPrefix(cosigned, canon[:len(canon)-1]) || bytes.Contains(canon, []byte("alpha")) {
		t.Fatalf("canonical of the cosigned note = %q, %v; want it with bravo's signature only", canon, err)
	}
	if err := a2.checkRelayed(&queue.CheckpointCmd{Site: "bravo", Size: 5, Root: cp.Root, Note: canon}); err != nil {
		t.Fatalf("the canonical note refused: %v", err)
	}
	for name, k := range map[string]*queue.CheckpointCmd{
		"unpinned key": {Site: "bravo", Size: 5, Root: cp.Root, Note: unpinned},
		"other size":   {Site: "bravo", Size: 6, Root: cp.Root, Note: good},
		"other root":   {Site: "bravo", Size: 5, Root: trust.Hash{2}, Note: good},
		"no note":      {Site: "bravo", Size: 5, Root: cp.Root},
	} {
		if err := a.checkRelayed(k); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}

func TestActorOf(t *testing.T) {
	if a := actorOf(nil); a != queue.NoActor {
		t.Fatalf("unknown caller = %+v", a)
	}
	a := actorOf(&syscall.Ucred{Uid: 0, Pid: 42})
	if a.UID != 0 || a.PID != 42 || a.User != "root" {
		t.Fatalf("root's actor = %+v", a)
	}
	var nilAuditor *auditor
	if nilAuditor.alarms() != nil {
		t.Fatal("a node without an auditor has audit alarms")
	}
	if !strings.Contains(peerActor(pki.Identity{Site: "bravo", Node: "bravo-1"}).Peer, "bravo/bravo-1") {
		t.Fatal("peer actor")
	}
}

// TestCheckKeyRecordsAChange: a leader whose key differs from the one the
// latest checkpoint was signed with records the change before it signs;
// with the same key it records nothing.
func TestCheckKeyRecordsAChange(t *testing.T) {
	store, commit := applyDirect(t, filepath.Join(t.TempDir(), "state.db"))
	defer store.Close()
	oldKey, _ := trust.GenerateSigningKey("alpha")
	newKey, _ := trust.GenerateSigningKey("alpha")
	cfg := &Config{Site: "alpha", Node: "alpha-1", SubmitTimeout: Duration{time.Second}}
	a := &auditor{cfg: cfg, log: slog.New(slog.DiscardHandler), store: store, sign: oldKey, propose: commit}
	ctx := context.Background()
	if !a.checkKey(ctx) {
		t.Fatal("no checkpoint yet: nothing to record")
	}
	if _, err := commit(ctx, &queue.Command{Op: queue.OpAudit, Time: 1, Audit: &queue.AuditCmd{Node: "alpha-1", Action: "x"}}); err != nil {
		t.Fatal(err)
	}
	a.checkpoint(ctx)
	if cp, err := store.AuditCheckpoint("alpha"); err != nil || cp.Size != 1 {
		t.Fatalf("checkpoint = %+v, %v", cp, err)
	}
	if !a.checkKey(ctx) || store.AuditSize() != 1 {
		t.Fatalf("same key: %d records, want 1", store.AuditSize())
	}
	a.sign = newKey
	if !a.checkKey(ctx) || store.AuditSize() != 2 {
		t.Fatalf("new key: %d records, want 2", store.AuditSize())
	}
	es, _, _ := store.AuditEntries(1, 1)
	r, _ := queue.DecodeAuditRecord(es[0].Record)
	if r.Action != "signing_key_changed" || !strings.Contains(r.Detail, newKey.ID().String()) || !strings.Contains(r.Detail, oldKey.ID().String()) {
		t.Fatalf("record = %+v", r)
	}
}

// TestServeOfferRateLimit: at most one checkpoint of a site is committed
// per half audit_checkpoint_interval; an offer too soon after it is
// refused with the retryable code retry_later and changes nothing.
func TestServeOfferRateLimit(t *testing.T) {
	store, commit := applyDirect(t, filepath.Join(t.TempDir(), "state.db"))
	defer store.Close()
	key, _ := trust.GenerateSigningKey("bravo")
	dec, _ := trust.GenerateDecryptionKey("bravo")
	ring, err := trust.ParseKeyring(trust.PublicLines(key.Public(), dec.Public()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Site: "alpha", Node: "alpha-1", Sites: []SiteConfig{{Name: "alpha"}, {Name: "bravo"}},
		SubmitTimeout: Duration{time.Second}, AuditCheckpointInterval: Duration{time.Minute}}
	a := &auditor{cfg: cfg, log: slog.New(slog.DiscardHandler), store: store, ring: ring, propose: commit}
	offer := func(root trust.Hash, from int64) ([]byte, error) {
		msg, err := trust.SignCheckpoint(key, trust.Checkpoint{Site: "bravo", Size: 1, Root: root})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(checkpointOffer{Note: msg, From: from})
		return a.serveOffer(context.Background(), pki.Identity{Site: "bravo", Node: "bravo-1"}, body)
	}
	if _, err := offer(trust.Hash{1}, -1); err != nil {
		t.Fatal(err)
	}
	// A fork of it, at once: refused for the rate, nothing kept.
	_, err = offer(trust.Hash{2}, 1)
	if !errors.Is(err, errRetryLater) || callCodes.Code(err) != "retry_later" {
		t.Fatalf("second offer at once: %v; want retry_later", err)
	}
	if n, _, _ := store.AuditForks(); n != 0 {
		t.Fatalf("the refused offer changed the state: %d forks", n)
	}
	if cp, err := store.AuditCheckpoint("bravo"); err != nil || cp.Root != (trust.Hash{1}) {
		t.Fatalf("held checkpoint after the refused offer = %+v, %v", cp, err)
	}
	// Half an interval later it is taken (and found a fork).
	a.mu.Lock()
	a.offered["bravo"] = time.Now().Add(-cfg.AuditCheckpointInterval.Duration / 2)
	a.mu.Unlock()
	if _, err := offer(trust.Hash{2}, 1); !errors.Is(err, errAuditFork) {
		t.Fatalf("offer after half an interval: %v; want audit_fork", err)
	}
}

// applyDirect opens a store at path and returns it with a propose function
// that applies each command at once, as Raft does with a proposal.
func applyDirect(t *testing.T, path string) (*queue.Store, func(context.Context, *queue.Command) (*queue.Result, error)) {
	t.Helper()
	store, err := queue.Open(path, "alpha", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	return store, func(_ context.Context, cmd *queue.Command) (*queue.Result, error) {
		b, err := cmd.Encode()
		if err != nil {
			return nil, err
		}
		index++
		return &store.Apply([]queue.Entry{{Index: index, Data: b}})[0], nil
	}
}
