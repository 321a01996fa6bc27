package daemon

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// evidenceStore is what GET /v1/messages/{id}/proof reads: the message,
// the signed statements its site stores about it, and its audit records'
// proofs. storeEvidence is the queue.Store's.
type evidenceStore interface {
	Lookup(id string) (*queue.Status, error)
	StoredProofs(id string) ([]trust.StoredProof, error)
	AuditProofs(id string) ([]trust.StoredAudit, error)
}

// storeEvidence reads a message's evidence from the site's store.
type storeEvidence struct{ store *queue.Store }

func (s storeEvidence) Lookup(id string) (*queue.Status, error) { return s.store.Lookup(id) }

// StoredProofs is the store's proofs of id (queue.Store.Proofs).
func (s storeEvidence) StoredProofs(id string) ([]trust.StoredProof, error) {
	return nil, nil // until the store keeps evidence
}

// AuditProofs is the store's audit records about id, each proven against
// the latest signed checkpoint.
func (s storeEvidence) AuditProofs(id string) ([]trust.StoredAudit, error) {
	return nil, nil // until the store keeps an audit log
}

// errNoEvidence: no signed statement covers the message yet.
var errNoEvidence = errors.New("no signed statement covers the message yet")

// buildBundle gathers the evidence bundle of message id.
func buildBundle(s evidenceStore, id string) (*trust.Bundle, error) {
	st, err := s.Lookup(id)
	if err != nil {
		return nil, err
	}
	proofs, err := s.StoredProofs(id)
	if err != nil {
		return nil, err
	}
	audit, err := s.AuditProofs(id)
	if err != nil {
		return nil, err
	}
	b, err := trust.NewBundle(st, proofs, audit)
	if err != nil {
		return nil, err
	}
	if len(b.Proofs) == 0 {
		return nil, fmt.Errorf("message %q (%s, %s -> %s): %w", id, st.State, st.Message.Origin, st.Message.Dest, errNoEvidence)
	}
	return b, nil
}

// proof serves GET /v1/messages/{id}/proof: the message's evidence bundle
// (package transport/trust), for hotlinectl get --proof.
func (a *apiServer) proof(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	id := r.PathValue("id")
	b, err := buildBundle(storeEvidence{a.store}, id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no message with id %q at site %s", id, a.cfg.Site))
	case errors.Is(err, errNoEvidence):
		writeError(w, http.StatusConflict, client.CodeConflict, fmt.Sprintf("%v at site %s (statements are kept from when its origin sends it)", err, a.cfg.Site))
	case err != nil:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, fmt.Sprintf("evidence of %q: %v", id, err))
	default:
		writeJSON(w, http.StatusOK, b)
	}
}
