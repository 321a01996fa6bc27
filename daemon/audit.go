package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os/user"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// The site's audit log (package queue keeps it, appending in apply) as
// this node moves it along:
//
//   - operator actions (path down/up, leader transfers, membership
//     changes, backups: the socket's admin endpoints, audit_api.go; other
//     sites' drill transfers; a change of the site's signing key) are
//     recorded with OpAudit: who (the socket caller's peer credentials,
//     or the other site's node) and what. Recording is best effort: it
//     waits at most auditRecordWait for the commit, never fails the
//     action, and logs what it could not record.
//   - the leader signs a checkpoint (trust.SignCheckpoint) when the log
//     grew, at most every audit_checkpoint_interval, and commits it
//     (OpCheckpoint, whose apply checks the root);
//   - it offers its latest checkpoint to every other site (the inter-site
//     call callAuditCheckpoint, audit_exchange.go) with a consistency
//     proof from the checkpoint that site holds; the receiver checks the
//     signature and the proof and commits it as held, or, inconsistent,
//     as a fork: kept as evidence, an alarm (audit_fork) at both ends.

// Bounds of operator records.
const (
	auditRecordWait  = time.Second // an action waits this long at most for its record
	auditRecordSlots = 16          // records in flight; more are dropped (logged)
)

// Errors of the checkpoint exchange, coded across the call (callCodes).
var (
	// errAuditFork: the offered checkpoint is inconsistent with the one
	// held of its site (kept as evidence).
	errAuditFork = errors.New("audit checkpoint forks from the one held")
	// errBadCheckpoint: the offer does not decode, is not signed by a
	// pinned key of the calling site, or its proof is malformed.
	errBadCheckpoint = errors.New("bad audit checkpoint")
	// errRetryLater: a checkpoint of the offering site was committed less
	// than half an audit_checkpoint_interval ago; offer again later.
	errRetryLater = errors.New("audit checkpoint offered too soon after the last one")
)

// auditor moves this node's audit log along: operator records, the
// leader's checkpoints and their exchange, the checkpoints other sites
// offer. Open builds it once the parts exist; it is safe for concurrent
// use.
type auditor struct {
	cfg     *Config
	log     *slog.Logger
	store   *queue.Store
	sign    *trust.SigningKey
	ring    *trust.Keyring
	link    *transport.Link
	propose func(context.Context, *queue.Command) (*queue.Result, error)
	stop    context.Context // the node's: ends background records

	isLeader func() bool // whether this node leads: only the leader serves offers (nil: always)

	slots chan struct{} // records in flight

	mu      sync.Mutex
	held    map[string]int64  // other site -> the size of our log it said it holds
	refused map[string]string // other site -> its refusal of our checkpoint as a fork

	offered map[string]time.Time // other site -> when serveOffer last proposed one of its checkpoints (under mu)
}

func newAuditor(cfg *Config, log *slog.Logger, store *queue.Store, site *siteKeys, link *transport.Link,
	propose func(context.Context, *queue.Command) (*queue.Result, error), stop context.Context) *auditor {
	return &auditor{cfg: cfg, log: log.With("component", "audit"), store: store, sign: site.sign, ring: site.ring,
		link: link, propose: propose, stop: stop, slots: make(chan struct{}, auditRecordSlots),
		held: map[string]int64{}, refused: map[string]string{}}
}

// actorOf is the audit actor of a socket caller's peer credentials (nil:
// unknown).
func actorOf(c *syscall.Ucred) queue.Actor {
	if c == nil {
		return queue.NoActor
	}
	a := queue.Actor{UID: int64(c.Uid), PID: int64(c.Pid)}
	if u, err := user.LookupId(strconv.FormatUint(uint64(c.Uid), 10)); err == nil && len(u.Username) <= queue.MaxAuditUser {
		a.User = u.Username
	}
	return a
}

// peerActor is the audit actor of a node of another site.
func peerActor(id pki.Identity) queue.Actor {
	a := queue.NoActor
	a.Peer = id.Site + "/" + id.Node
	return a
}

// auditRecord records an operator action (or a refusal) in the site's
// audit log: action (a short name, at most queue.MaxAuditAction bytes),
// detail (cut to queue.MaxAuditDetail), who did it (default: nobody in
// particular, queue.NoActor). Best effort: see auditor.record.
func (n *Node) auditRecord(ctx context.Context, action, detail string, who ...queue.Actor) {
	actor := queue.NoActor
	if len(who) > 0 {
		actor = who[0]
	}
	n.audit.record(ctx, action, detail, actor)
}

// record commits an OpAudit record. It waits until the record is
// committed, ctx ends or auditRecordWait passed, whichever is first; the
// proposal goes on in the background (up to submit_timeout, or until the
// node stops) and a failure is logged, never returned. With
// auditRecordSlots records in flight, a record is dropped (logged).
func (a *auditor) record(ctx context.Context, action, detail string, who queue.Actor) {
	if len(detail) > queue.MaxAuditDetail {
		detail = detail[:queue.MaxAuditDetail]
	}
	cmd := &queue.Command{Op: queue.OpAudit, Time: time.Now().UnixNano(),
		Audit: &queue.AuditCmd{Node: a.cfg.Node, Actor: who, Action: action, Detail: detail}}
	select {
	case a.slots <- struct{}{}:
	default:
		a.log.Error("audit record dropped: too many in flight", "action", action, "detail", detail)
		return
	}
	done := make(chan struct{})
	go func() {
		defer func() { <-a.slots }()
		defer close(done)
		pctx, cancel := context.WithTimeout(a.stop, a.cfg.SubmitTimeout.Duration)
		defer cancel()
		res, err := a.propose(pctx, cmd)
		if err == nil && res.Err != "" {
			err = errors.New(res.Err)
		}
		if err != nil {
			a.log.Error("could not record an operator action in the audit log", "action", action, "detail", detail, "err", err)
		}
	}()
	t := time.NewTimer(auditRecordWait)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// noteKeyHash returns the key hash of site's signature on a signed note
// (the KeyID of the key that signed it), without verifying it.
func noteKeyHash(msg []byte, site string) (uint32, bool) {
	_, err := note.Open(msg, note.VerifierList())
	var unv *note.UnverifiedNoteError
	if !errors.As(err, &unv) {
		return 0, false
	}
	for _, s := range unv.Note.UnverifiedSigs {
		if s.Name == site {
			return s.Hash, true
		}
	}
	return 0, false
}

// checkKey records, on a new leader, a change of the site's signing key:
// the latest checkpoint was signed with another key than this node's. It
// reports whether the leader may sign (nothing to record, or recorded).
func (a *auditor) checkKey(ctx context.Context) bool {
	cp, err := a.store.AuditCheckpoint(a.cfg.Site)
	if errors.Is(err, queue.ErrNoCheckpoint) {
		return true
	}
	if err != nil {
		a.log.Warn("reading the latest audit checkpoint", "err", err)
		return false
	}
	old, ok := noteKeyHash(cp.Note, a.cfg.Site)
	if ok && old == uint32(a.sign.ID()) {
		return true
	}
	detail := fmt.Sprintf("site %s signs with key %s from now on; checkpoint %d was signed with key %08x", a.cfg.Site, a.sign.ID(), cp.Size, old)
	pctx, cancel := context.WithTimeout(ctx, a.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.propose(pctx, &queue.Command{Op: queue.OpAudit, Time: time.Now().UnixNano(),
		Audit: &queue.AuditCmd{Node: a.cfg.Node, Actor: queue.NoActor, Action: "signing_key_changed", Detail: detail}})
	if err == nil && res.Err != "" {
		err = errors.New(res.Err)
	}
	if err != nil {
		a.log.Warn("could not record the signing key change in the audit log; will retry before signing", "err", err)
		return false
	}
	a.log.Warn("signing key changed", "detail", detail)
	return true
}

// alarms words the audit alarms raised now: forks kept of other sites'
// logs, and other sites' refusals of ours as forks.
func (a *auditor) alarms() []string {
	if a == nil {
		return nil
	}
	var out []string
	if n, latest, err := a.store.AuditForks(); err == nil && n > 0 {
		out = append(out, fmt.Sprintf("audit log of site %s forked: %d checkpoints inconsistent with those held kept as evidence, latest of size %d at %s (hotlinectl audit checkpoint --site %s)",
			latest.Site, n, latest.Size, time.Unix(0, latest.Time).UTC().Format(time.RFC3339), latest.Site))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, site := range slices.Sorted(maps.Keys(a.refused)) {
		out = append(out, fmt.Sprintf("site %s refused our audit checkpoint as a fork of the one it holds: %s", site, a.refused[site]))
	}
	return out
}
