package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// Two-person release (config [[mailboxes]] release = true, releasers):
// a message submitted from such a mailbox is stored held, with its
// submitter's peer credentials, and enters its channel only when one of
// the mailbox's releasers with another uid releases it (queue/held.go
// decides the uid rule; the rights are checked here, before proposing).
//
//	POST /v1/messages/{id}/release  release right on the sending mailbox, not the submitter
//	GET  /v1/held[?mailbox=]        held messages of the mailboxes the caller may release or send from

// maxHeldList bounds a GET /v1/held reply.
const maxHeldList = 1000

func (a *apiServer) releaseRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+client.PathMessages+"/{id}"+client.PathReleaseSuffix, a.release)
	mux.HandleFunc("GET "+client.PathHeld, a.held)
}

// holds reports whether messages sent from the mailbox stored as name
// wait for release.
func (c *Config) holds(name string) bool {
	mb := c.mailboxes().get(name)
	return mb != nil && mb.cfg.Release
}

// release serves POST /v1/messages/{id}/release.
func (a *apiServer) release(w http.ResponseWriter, r *http.Request) {
	if a.health.storageFull() != nil {
		a.writeStorageFull(w)
		return
	}
	if !a.readBarrier(w, r) {
		return
	}
	id := r.PathValue("id")
	st, ok := a.lookupHeld(w, id)
	if !ok {
		return
	}
	who := callerOf(r)
	box := queue.MailboxName(st.Message.From)
	if msg, ok := a.cfg.mailboxes().check(who, st.Message.From, RightRelease); !ok {
		writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf("message %q: %s; it stays held", id, msg))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.commit.proposeRYW(ctx, &queue.Command{Op: queue.OpRelease, Time: time.Now().UnixNano(),
		Release: &queue.Release{ID: id, By: actorOf(who.cred), Node: a.cfg.Node}})
	// The state machine's refusals come back as the commit's error
	// ("apply release: " and Result.Err).
	refused := ""
	if err != nil {
		refused = err.Error()
	} else {
		refused = res.Err
	}
	switch {
	case strings.Contains(refused, queue.ErrSelfRelease.Error()):
		writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf(
			"mailbox %q: the submitter cannot release their own message: %s submitted %q; another of the mailbox's releasers must release it (it stays held)", box, who, id))
		return
	case strings.Contains(refused, queue.ErrNotHeld.Error()):
		a.lookupHeld(w, id) // released meanwhile: says by whom
		return
	case strings.Contains(refused, queue.ErrResyncing.Error()):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, refused+"; it stays held")
		return
	case err != nil:
		a.writeProposeError(w, err)
		return
	case res.Err != "" || res.Release == nil:
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "release: "+res.Err)
		return
	}
	a.log.Info("message released", "id", id, "mailbox", box, "by", who.String(), "seq", res.Release.Seq)
	if st, err := a.store.Lookup(id); err == nil {
		writeJSON(w, http.StatusOK, messageView(st))
		return
	}
	// Committed, but this node has not applied it yet.
	m := messageView(st)
	m.State, m.Seq = queue.Queued.String(), res.Release.Seq
	writeJSON(w, http.StatusOK, m)
}

// lookupHeld returns the held message id, or answers the request: 404
// for an unknown message, 409 for one that is not held (naming who
// released it, if someone did).
func (a *apiServer) lookupHeld(w http.ResponseWriter, id string) (*queue.Status, bool) {
	st, err := a.store.Lookup(id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no message with id %q at site %s", id, a.cfg.Site))
		return nil, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return nil, false
	case st.State == queue.Held:
		return st, true
	}
	if rel := a.releasedBy(id); rel != "" {
		writeError(w, http.StatusConflict, client.CodeConflict, fmt.Sprintf("message %q was already released %s (state %s)", id, rel, st.State))
	} else {
		writeError(w, http.StatusConflict, client.CodeConflict, fmt.Sprintf(
			"message %q is not held (state %s, %s): only a message sent from a mailbox with release = true waits for release", id, st.State, st.Direction))
	}
	return nil, false
}

// releasedBy says who released message id and when ("by user bob (uid
// 1002) at ..."), from its audit record, or "" if none is found.
func (a *apiServer) releasedBy(id string) string {
	es, err := a.store.AuditEntriesOf(id)
	if err != nil {
		return ""
	}
	for _, e := range slices.Backward(es) {
		rec, err := queue.DecodeAuditRecord(e.Record)
		if err == nil && rec.Kind == queue.AuditReleased {
			return fmt.Sprintf("by %s on node %s at %s", actorName(rec.Actor), rec.Node, time.Unix(0, rec.Time).UTC().Format(time.RFC3339))
		}
	}
	return ""
}

// actorName names an audit actor for people: "user bob (uid 1002)".
func actorName(a queue.Actor) string {
	switch {
	case a.Peer != "":
		return "node " + a.Peer
	case a.UID < 0 && a.User != "":
		return a.User // the node's own, as "spool:MAILBOX" (spool_in.go)
	case a.UID < 0:
		return "an unidentified caller"
	case a.User != "":
		return fmt.Sprintf("user %s (uid %d)", a.User, a.UID)
	}
	return fmt.Sprintf("uid %d", a.UID)
}

// held serves GET /v1/held: the held messages of ?mailbox= (the caller
// must have the release or the send right on it), or of every mailbox it
// has one of them on.
func (a *apiServer) held(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	q := queryOf(r.URL.RawQuery)
	who, m := callerOf(r), a.cfg.mailboxes()
	var boxes []string // nil: every mailbox (root)
	if s := q["mailbox"]; s != "" {
		name, err := parseMailbox(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, "mailbox: "+err.Error())
			return
		}
		_, mayRelease := m.check(who, name, RightRelease)
		if _, maySend := m.check(who, name, RightSend); !mayRelease && !maySend {
			writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf(
				"mailbox %q: %s lacks the release and the send right (only they may see its held messages)", queue.MailboxName(name), who))
			return
		}
		boxes = []string{name}
	} else if !who.root() {
		boxes = append(m.allowed(who, RightRelease), m.allowed(who, RightSend)...)
	}
	held, more, err := a.store.Held(queue.HeldQuery{Mailboxes: boxes, Max: maxHeldList})
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	out := client.HeldReply{Messages: make([]client.HeldMessage, 0, len(held)), More: more}
	for i := range held {
		out.Messages = append(out.Messages, heldView(&held[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

// heldView is a held message as the API shows it.
func heldView(h *queue.HeldMessage) client.HeldMessage {
	m := messageView(&h.Status)
	m.Size = h.PayloadLen
	if h.Status.Message.Flags&queue.FlagSealed != 0 {
		m.Size = trust.PlaintextLen(h.PayloadLen)
	}
	m.PayloadSHA256 = hex.EncodeToString(h.PlaintextSum)
	return client.HeldMessage{Message: *m, SubmittedBy: actorName(h.By), Node: h.Node}
}
