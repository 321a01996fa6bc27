package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestDamagedAuditRecordNotServed: an audit record changed on disk after
// it was appended is neither served by the API nor put into a bundle.
func TestDamagedAuditRecordNotServed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	store, commit := applyDirect(t, path)
	ctx := context.Background()
	sub := &queue.Command{Op: queue.OpSubmit, Time: 1, Submit: &queue.Submit{Origin: "alpha",
		Items: []queue.SubmitItem{{ID: "m1", Dest: "bravo", Precedence: queue.Routine, Payload: []byte("one")}}}}
	if r, err := commit(ctx, sub); err != nil || r.Err != "" {
		t.Fatalf("submit: %v %+v", err, r)
	}
	key, _ := trust.GenerateSigningKey("alpha")
	cfg := &Config{Site: "alpha", Node: "alpha-1", SubmitTimeout: Duration{time.Second}}
	a := &auditor{cfg: cfg, log: slog.New(slog.DiscardHandler), store: store, sign: key, propose: commit}
	a.checkpoint(ctx)
	if _, err := auditProofs(store, "alpha", "m1"); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
	store.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := binary.BigEndian.AppendUint64(nil, 0)
		v := bytes.Clone(b.Get(k))
		v[len(v)-1] ^= 1
		return b.Put(k, v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	store, err = queue.Open(path, "alpha", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if b, err := buildBundle(store, "alpha", "m1"); !errors.Is(err, queue.ErrCorrupt) || b != nil {
		t.Fatalf("bundle of m1 = %v, %v; want ErrCorrupt", b, err)
	}
	api := &apiServer{cfg: cfg, store: store}
	for _, q := range []string{"?from=0", "?id=m1"} {
		w := httptest.NewRecorder()
		api.auditEntries(w, httptest.NewRequest(http.MethodGet, "/v1/audit/entries"+q, nil))
		if w.Code != http.StatusInternalServerError || !bytes.Contains(w.Body.Bytes(), []byte("audit record 0")) {
			t.Fatalf("entries%s: %d %s; want 500 naming audit record 0", q, w.Code, w.Body)
		}
	}
}
