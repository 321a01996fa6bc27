package daemon

// The inbox endpoints of the socket API: reading a mailbox's unread
// messages (long-poll, byte budget, opened payloads) and acknowledging
// them. The rest of the API is in api.go.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

func (a *apiServer) inbox(w http.ResponseWriter, r *http.Request) {
	q := queryOf(r.URL.RawQuery)
	after, err := q.uint("after", 0, 0, maxPos)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	maxN, err := q.uint("max", defaultInboxN, 1, maxInboxN)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	maxBytes, err := q.uint("max_bytes", defInboxBytes, 1, maxInboxBytes)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	wait, err := q.duration("wait", 0, maxInboxWait)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	boxes, ok := a.readableBoxes(w, r, q["mailbox"])
	if !ok {
		return
	}
	if !a.readBarrier(w, r) {
		return
	}
	parked := false
	defer func() {
		if parked {
			a.unpark()
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		// Only a change of the inbox wakes a long-poll, and it reads the
		// store only if a message may have arrived after `after`.
		changed := a.store.InboxChanged()
		if a.store.InboxLast() > after {
			if a.serveInbox(w, r, boxes, after, int(maxN), int64(maxBytes), wait == 0) {
				return
			}
		}
		if wait == 0 {
			a.writeInbox(w, nil, after)
			return
		}
		if !parked {
			if !a.park() {
				a.writeBusy(w)
				return
			}
			parked = true
		}
		select {
		case <-changed:
		case <-t.C:
			wait = 0
		case <-r.Context().Done():
			return
		case <-a.stop.Done():
			writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, errShuttingDown.Error())
			return
		}
	}
}

// serveInbox reads unread messages after `after` within the node's inbox
// budget and writes them; it reports whether it answered (always when
// final, else only when there was something to send).
// readableBoxes returns the mailboxes an inbox read covers (stored names;
// nil: all, for root): the one named, if the caller may read it, else all
// it may read. It answers the request itself (403, 400) when it returns
// false.
func (a *apiServer) readableBoxes(w http.ResponseWriter, r *http.Request, name string) ([]string, bool) {
	mbox, who := a.cfg.mailboxes(), callerOf(r)
	if name != "" {
		mb, err := parseMailbox(name)
		if err != nil {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, "mailbox: "+err.Error())
			return nil, false
		}
		if msg, ok := mbox.check(who, mb, RightRead); !ok {
			writeError(w, http.StatusForbidden, client.CodeForbidden, msg)
			return nil, false
		}
		return []string{mb}, true
	}
	boxes := mbox.allowed(who, RightRead)
	if boxes != nil && len(boxes) == 0 {
		writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf("%s may read no mailbox of site %s", who, a.cfg.Site))
		return nil, false
	}
	return boxes, true
}

func (a *apiServer) serveInbox(w http.ResponseWriter, r *http.Request, boxes []string, after uint64, maxN int, maxBytes int64, final bool) bool {
	// A reply holds at most maxBytes, or one message over it, and one
	// opened payload at a time: take enough for either before reading.
	took, err := a.budget.acquire(r.Context(), maxBytes+a.cfg.payloadLimit()+a.cfg.MaxMessageSize)
	if err != nil {
		return true // the client went away
	}
	defer a.budget.release(took)
	page, err := a.store.InboxOf(queue.InboxQuery{Mailboxes: boxes, After: after, Max: maxN, MaxBytes: maxBytes}) // queue/mailbox.go
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return true
	}
	if len(page.Items) == 0 && !final {
		return false
	}
	a.writeInbox(w, page.Items, page.Next)
	return true
}

// writeInbox writes an Inbox reply, one message at a time with the
// payload base64-encoded straight into the connection, so the reply costs
// no memory beyond the messages already read. A client that does not read
// it is cut off after WriteTimeout.
// writeInbox writes items; next is where the reader continues (the last
// item's position, or past positions scanned for other mailboxes).
func (a *apiServer) writeInbox(w http.ResponseWriter, items []queue.InboxItem, next uint64) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.lim.WriteTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "{\n  \"messages\": [")
	for i, it := range items {
		m := it.Message
		if i > 0 {
			io.WriteString(w, ",")
		}
		io.WriteString(w, "\n    ")
		im := client.InboxMessage{
			ID: m.ID, Key: m.Key, From: m.Origin, Mailbox: queue.MailboxName(m.Mailbox), FromMailbox: queue.MailboxName(m.From),
			Type: typeName(m.Type), Precedence: m.Precedence.String(), Seq: m.Seq, Pos: it.Pos,
			SubmittedAt: time.Unix(0, m.SubmittedAt).UTC(), ReceivedAt: time.Unix(0, it.ReceivedAt).UTC(),
		}
		var err error
		if im.Payload, err = a.seal.open(&m); err != nil {
			im.Error = err.Error()
		}
		if err := writeInboxMessage(w, im); err != nil {
			return // the connection failed; the client sees a truncated reply
		}
	}
	if len(items) > 0 {
		io.WriteString(w, "\n  ")
	}
	fmt.Fprintf(w, "],\n  \"next\": %d\n}\n", next)
}

// payloadField is how an empty payload marshals; writeInboxMessage puts
// the real one in its place. JSON escapes every quote inside a string, so
// the sequence cannot occur inside another field's value.
var payloadField = []byte(`,"payload":""`)

// writeInboxMessage writes m as one JSON object, streaming its payload.
func writeInboxMessage(w io.Writer, m client.InboxMessage) error {
	payload := m.Payload
	m.Payload = []byte{}
	head, err := json.Marshal(m)
	if err != nil {
		return err
	}
	i := bytes.Index(head, payloadField)
	if i < 0 {
		return fmt.Errorf("inbox reply: no payload field in %s", head)
	}
	cut := i + len(payloadField) - 1 // just before the closing quote
	if _, err := w.Write(head[:cut]); err != nil {
		return err
	}
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := enc.Write(payload); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(head[cut:])
	return err
}

func (a *apiServer) ack(w http.ResponseWriter, r *http.Request) {
	var req client.AckRequest
	var err error
	if req.IDs, err = readAck(w, r); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, client.CodeTooLarge, fmt.Sprintf("ack body is larger than %d bytes", maxAckBodySize))
			return
		}
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	if a.health.storageFull() != nil {
		a.writeStorageFull(w)
		return
	}
	if !a.readBarrier(w, r) {
		return
	}
	who, mbox := callerOf(r), a.cfg.mailboxes()
	for _, id := range req.IDs {
		st, err := a.store.LookupInbound(id)
		if errors.Is(err, queue.ErrCorrupt) {
			writeError(w, http.StatusInternalServerError, client.CodeInternal, fmt.Sprintf("inbox message %q: %v; nothing was acknowledged", id, err))
			return
		}
		if err != nil || st.Direction != queue.Inbound {
			writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no inbox message with id %q at site %s; nothing was acknowledged", id, a.cfg.Site))
			return
		}
		if msg, ok := mbox.check(who, st.Message.Mailbox, RightAck); !ok {
			writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf("message %q: %s; nothing was acknowledged", id, msg))
			return
		}
	}
	by := actorOf(who.cred) // audit.go: the audit log names who acknowledged
	mr := &queue.MarkRead{IDs: req.IDs, By: &by, Node: a.cfg.Node, Mailboxes: mbox.allowed(who, RightAck)}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.commit.proposeRYW(ctx, &queue.Command{Op: queue.OpMarkRead, Time: time.Now().UnixNano(), MarkRead: mr})
	if err != nil {
		a.writeProposeError(w, err)
		return
	}
	acked := 0
	if res.MarkRead != nil {
		for _, e := range res.MarkRead.Errs {
			if e == "" {
				acked++
			}
		}
	}
	writeJSON(w, http.StatusOK, client.AckReply{Acked: acked})
}

// readAck reads an ack body: exactly one {"ids": [...]} object, 1 to
// maxAckIDs ids, each 1 to queue.MaxIDLen bytes. Duplicates are folded
// (first occurrence kept), so a long list of one id is one mark.
func readAck(w http.ResponseWriter, r *http.Request) ([]string, error) {
	var req client.AckRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAckBodySize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, fmt.Errorf("body must be {\"ids\": [...]}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errors.New("body must be one {\"ids\": [...]} object: there is more after it")
	}
	switch {
	case len(req.IDs) == 0:
		return nil, errors.New("no ids to acknowledge")
	case len(req.IDs) > maxAckIDs:
		return nil, fmt.Errorf("%d ids in one ack; at most %d (acknowledge in several calls)", len(req.IDs), maxAckIDs)
	}
	seen := make(map[string]bool, len(req.IDs))
	ids := req.IDs[:0]
	for i, id := range req.IDs {
		switch {
		case id == "":
			return nil, fmt.Errorf("ids[%d] is empty", i)
		case len(id) > queue.MaxIDLen:
			return nil, fmt.Errorf("ids[%d] is %d bytes; a message id is at most %d", i, len(id), queue.MaxIDLen)
		case seen[id]:
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}
