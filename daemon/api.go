package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"hotline/daemon/client"
	"hotline/queue"
)

// apiServer is the local HTTP/JSON API on the Unix socket.
type apiServer struct {
	n   *Node
	ln  net.Listener
	srv *http.Server
}

type credKey struct{}

func newAPIServer(n *Node) (*apiServer, error) {
	ln, err := listenSocket(n.cfg.Socket, n.cfg.SocketMode, n.cfg.SocketGroup)
	if err != nil {
		return nil, err
	}
	a := &apiServer{n: n, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+client.PathMessages, a.submit)
	mux.HandleFunc("GET "+client.PathMessages+"/{id}", a.get)
	mux.HandleFunc("GET "+client.PathInbox, a.inbox)
	mux.HandleFunc("POST "+client.PathAck, a.ack)
	mux.HandleFunc("GET "+client.PathStatus, a.status)
	mux.Handle("GET /metrics", n.metrics.handler())
	a.adminRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no endpoint %s %s (see the README's socket API)", r.Method, r.URL.Path))
	})
	a.srv = &http.Server{
		Handler:           n.guard(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cred, err := peerCred(c); err == nil {
				return context.WithValue(ctx, credKey{}, cred)
			}
			return ctx
		},
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("socket API stopped", "err", err)
		}
	}()
	return a, nil
}

// caller returns the peer credentials of the request's connection.
func caller(r *http.Request) *syscall.Ucred {
	c, _ := r.Context().Value(credKey{}).(*syscall.Ucred)
	return c
}

func (a *apiServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = a.srv.Close() // long-polls still open
	}
	return err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, client.Error{Error: msg, Code: code})
}

var errShuttingDown = errors.New("node is shutting down")

// writeProposeError maps a failed commit to a reply.
func (a *apiServer) writeProposeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errShuttingDown):
		writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, err.Error())
	case errors.Is(err, ErrNoQuorum), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, client.CodeNoQuorum, fmt.Sprintf(
			"site %s did not commit within %v (no leader or no majority reachable): %v; retrying with the same id is safe",
			a.n.cfg.Site, a.n.cfg.SubmitTimeout, err))
	default:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
	}
}

func parseDurationParam(q map[string][]string, name string, def, maxv time.Duration) (time.Duration, error) {
	s := ""
	if v := q[name]; len(v) > 0 {
		s = v[0]
	}
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration like 30s", name, s)
	}
	if maxv > 0 && d > maxv {
		return 0, fmt.Errorf("%s=%v is over the limit of %v", name, d, maxv)
	}
	return d, nil
}

const maxKeyLen = 256

func (a *apiServer) submit(w http.ResponseWriter, r *http.Request) {
	n := a.n
	q := r.URL.Query()
	to := q.Get("to")
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "missing destination: set to=SITE")
		return
	case to == n.cfg.Site:
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("destination %q is this site; send to another site (%s)", to, strings.Join(n.cfg.remoteSites(), ", ")))
		return
	case n.cfg.siteConfig(to) == nil:
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("unknown destination site %q (configured: %s)", to, strings.Join(n.cfg.remoteSites(), ", ")))
		return
	}
	prec, err := queue.ParsePrecedence(q.Get("precedence"))
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "precedence "+err.Error())
		return
	}
	key := q.Get("id")
	if len(key) > maxKeyLen || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("id must be at most %d printable characters", maxKeyLen))
		return
	}
	ttl, err := parseDurationParam(q, "ttl", 0, 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	wait := queue.Queued
	if s := q.Get("wait"); s != "" {
		if wait, err = queue.ParseState(s); err != nil || wait == queue.Expired {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("wait=%q is not queued, delivered or read", s))
			return
		}
	}
	timeout, err := parseDurationParam(q, "timeout", 30*time.Second, time.Hour)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	var flags uint32
	if s := q.Get("drill"); s != "" {
		drill, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("drill=%q is not true or false", s))
			return
		}
		if drill && !n.isAdmin(caller(r)) {
			writeError(w, http.StatusForbidden, client.CodeForbidden, "drill traffic: "+n.forbidden(caller(r)))
			return
		}
		if drill {
			flags |= queue.FlagDrill
		}
	}
	limit := n.cfg.MaxMessageSize
	payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, client.CodeTooLarge, fmt.Sprintf("message is larger than the limit of %d bytes (max_message_size)", limit))
			return
		}
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "reading message: "+err.Error())
		return
	}
	if len(payload) == 0 {
		writeError(w, http.StatusBadRequest, client.CodeEmpty, "message is empty")
		return
	}

	// A known key with the same content is answered without a commit, so a
	// retry succeeds even while the site has no quorum.
	var res queue.SubmitResult
	if key != "" {
		if st, err := n.store.LookupKey(key); err == nil && st.Direction == queue.Outbound &&
			st.Message.Dest == to && st.Message.Precedence == prec && bytes.Equal(st.Message.Payload, payload) {
			res = queue.SubmitResult{ID: st.Message.ID, Seq: st.Message.Seq, Existing: true}
		}
	}
	if res.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
			return
		}
		item := queue.SubmitItem{ID: id.String(), Key: key, Dest: to, Precedence: prec, Payload: payload, Flags: flags}
		if ttl > 0 {
			item.ExpiresAt = time.Now().Add(ttl).UnixNano()
		}
		ctx, cancel := context.WithTimeout(r.Context(), n.cfg.SubmitTimeout.Duration)
		res, err = n.subs.submit(ctx, item)
		cancel()
		if err != nil {
			a.writeProposeError(w, err)
			return
		}
		if res.Err != "" {
			if res.Err == queue.ErrKeyConflict.Error() {
				writeError(w, http.StatusConflict, client.CodeKeyConflict, fmt.Sprintf("id %q was already used for a different message (destination, precedence or content differ)", key))
				return
			}
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, res.Err)
			return
		}
	}
	st, err := a.waitState(r.Context(), res.ID, wait, timeout)
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	m := messageView(st)
	m.Existing = res.Existing
	code := http.StatusCreated
	if res.Existing {
		code = http.StatusOK
	}
	writeJSON(w, code, m)
}

// stateReached reports whether have satisfies a wait for want: states
// are ordered (read implies delivered), and expired never moves on.
func stateReached(have, want queue.State) bool {
	if have == queue.Expired {
		return true // never moves on
	}
	return have >= want
}

// waitState waits until the message reaches want in this node's copy of the
// state, or timeout passes, and returns its status then. The submit has
// committed, but a follower may apply it a moment later, so not-found is
// waited out too.
func (a *apiServer) waitState(ctx context.Context, id string, want queue.State, timeout time.Duration) (*queue.Status, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		changed := a.n.store.Changed()
		st, err := a.n.store.Lookup(id)
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			return nil, err
		}
		if err == nil && stateReached(st.State, want) {
			return st, nil
		}
		select {
		case <-changed:
		case <-t.C:
			if err != nil {
				return nil, fmt.Errorf("message %s committed but not yet applied on this node after %v", id, timeout)
			}
			return st, nil
		case <-ctx.Done():
			if st == nil {
				return nil, ctx.Err()
			}
			return st, nil
		case <-a.n.ctx.Done():
			return nil, errShuttingDown
		}
	}
}

func tptr(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

func messageView(st *queue.Status) *client.Message {
	m := st.Message
	return &client.Message{
		ID: m.ID, Key: m.Key, Direction: string(st.Direction), From: m.Origin, To: m.Dest,
		Precedence: m.Precedence.String(), Seq: m.Seq, Size: len(m.Payload), State: st.State.String(),
		SubmittedAt: time.Unix(0, st.SubmittedAt).UTC(),
		DeliveredAt: tptr(st.DeliveredAt), ReadAt: tptr(st.ReadAt), ExpiredAt: tptr(st.ExpiredAt), ExpiresAt: tptr(m.ExpiresAt),
	}
}

func (a *apiServer) get(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	id := r.PathValue("id")
	st, err := a.n.store.Lookup(id)
	if errors.Is(err, queue.ErrNotFound) {
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no message with id %q at site %s", id, a.n.cfg.Site))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, messageView(st))
}

func (a *apiServer) inbox(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("after=%q is not a position", s))
			return
		}
		after = v
	}
	maxN := 100
	if s := q.Get("max"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("max=%q is not a number from 1 to 1000", s))
			return
		}
		maxN = v
	}
	wait, err := parseDurationParam(q, "wait", 0, 5*time.Minute)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		changed := a.n.store.Changed()
		items, err := a.n.store.Inbox(after, maxN)
		if err != nil {
			writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
			return
		}
		if len(items) > 0 || wait == 0 {
			out := client.Inbox{Messages: make([]client.InboxMessage, 0, len(items)), Next: after}
			for _, it := range items {
				m := it.Message
				out.Messages = append(out.Messages, client.InboxMessage{
					ID: m.ID, Key: m.Key, From: m.Origin, Precedence: m.Precedence.String(), Seq: m.Seq, Pos: it.Pos,
					Payload: m.Payload, SubmittedAt: time.Unix(0, m.SubmittedAt).UTC(), ReceivedAt: time.Unix(0, it.ReceivedAt).UTC(),
				})
				out.Next = it.Pos
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		select {
		case <-changed:
		case <-t.C:
			wait = 0
		case <-r.Context().Done():
			return
		case <-a.n.ctx.Done():
			writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, errShuttingDown.Error())
			return
		}
	}
}

func (a *apiServer) ack(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	var req client.AckRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "body must be {\"ids\": [...]}: "+err.Error())
		return
	}
	if len(req.IDs) == 0 {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "no ids to acknowledge")
		return
	}
	for _, id := range req.IDs {
		st, err := a.n.store.Lookup(id)
		if err != nil || st.Direction != queue.Inbound {
			writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no inbox message with id %q at site %s; nothing was acknowledged", id, a.n.cfg.Site))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.n.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.n.proposeRYW(ctx, &queue.Command{Op: queue.OpMarkRead, Time: time.Now().UnixNano(), MarkRead: &queue.MarkRead{IDs: req.IDs}})
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
