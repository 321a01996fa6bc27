package daemon

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// errNoEvidence: no signed statement covers the message yet.
var errNoEvidence = errors.New("no signed statement covers the message yet")

// buildBundle gathers the evidence bundle of message id from site's
// store: the message, the statements the store keeps about it, and its
// audit records under the site's latest signed checkpoint (records
// appended since are left out: the next checkpoint covers them).
func buildBundle(s *queue.Store, site, id string) (*trust.Bundle, error) {
	st, err := s.Lookup(id)
	if err != nil {
		return nil, err
	}
	proofs, err := s.Proofs(id)
	if err != nil {
		return nil, err
	}
	audit, err := auditProofs(s, site, id)
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

// auditProofs returns the audit records about id that site's latest own
// checkpoint covers, each with its inclusion proof against it.
func auditProofs(s *queue.Store, site, id string) ([]trust.StoredAudit, error) {
	entries, err := s.AuditEntriesOf(id)
	if err != nil {
		return nil, err
	}
	cp, err := s.AuditCheckpoint(site)
	if errors.Is(err, queue.ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []trust.StoredAudit
	for _, e := range entries {
		if e.Index >= cp.Size || len(out) == trust.MaxBundleAudit {
			continue
		}
		p, err := s.AuditProveRecord(e.Index, cp.Size)
		if err != nil {
			return nil, err
		}
		out = append(out, trust.StoredAudit{Record: e.Record, Index: e.Index, Proof: p, Checkpoint: cp.Note})
	}
	return out, nil
}

// proofReplyCopies is how many times a bundle reply holds its envelope at
// most: as read, in base64, in the JSON encoder's buffer and indented.
const proofReplyCopies = 5

// proof serves GET /v1/messages/{id}/proof: the message's evidence bundle
// (package transport/trust), for hotlinectl get --proof. The bundle holds
// the sealed payload, so a reply takes its share of the inbox reply
// budget before it reads the message.
func (a *apiServer) proof(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	id := r.PathValue("id")
	if st, err := a.store.Lookup(id); err == nil {
		if msg, ok := a.mayView(callerOf(r), st); !ok { // api.go
			writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf("evidence of %q: %s", id, msg))
			return
		}
	}
	took, err := a.budget.acquire(r.Context(), proofReplyCopies*a.cfg.payloadLimit())
	if err != nil {
		return // the client went away
	}
	defer a.budget.release(took)
	b, err := buildBundle(a.store, a.cfg.Site, id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no message with id %q at site %s", id, a.cfg.Site))
	case errors.Is(err, errNoEvidence):
		writeError(w, http.StatusConflict, client.CodeConflict, fmt.Sprintf("%v at site %s (statements are kept from when its origin sends it)", err, a.cfg.Site))
	case err != nil:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, fmt.Sprintf("evidence of %q: %v", id, err))
	default:
		if st, err := a.store.Lookup(id); err == nil && st.Message.Origin == b.Message.Origin && st.Message.Seq == b.Message.Seq {
			b.Objective = a.objectives.bundle(st) // objectives.go
		}
		writeJSON(w, http.StatusOK, b)
	}
}
