package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// apiServer is the local HTTP/JSON API on the Unix socket.
type apiServer struct {
	cfg        *Config
	log        *slog.Logger
	store      *queue.Store
	commit     *committer
	health     *health
	ops        *admin // admin operations
	audit      *auditor
	metrics    *metrics
	seal       *sealer               // opens inbox reads
	send       *sender               // checks, seals and commits submits (sender.go)
	objectives *objectives           // read objectives (objectives.go)
	stop       context.Context       // ends when the node stops
	nodeStatus func() *client.Status // Node.Status

	ln  net.Listener
	mux *http.ServeMux
	srv *http.Server

	lim     socketLimits
	budget  *budget       // inbox reply bytes in memory
	waiters chan struct{} // parked long-polls and submit waits
}

type credKey struct{}

type callerKey struct{}

// newAPIServer listens on n's socket and serves the API with n's parts.
func newAPIServer(n *Node) (*apiServer, error) {
	ln, err := listenSocket(n.cfg.Socket, n.cfg.SocketMode, n.cfg.SocketGroup)
	if err != nil {
		return nil, err
	}
	lim := apiLimits
	a := &apiServer{cfg: n.cfg, log: n.log, store: n.store, commit: n.commit, health: n.health, ops: n.admin, audit: n.audit,
		metrics: n.metrics, seal: n.sealer, send: n.sender, objectives: n.objectives, stop: n.ctx, nodeStatus: n.Status, ln: ln, lim: lim, budget: newBudget(lim.InboxBudget), waiters: make(chan struct{}, lim.MaxWaiters)}
	mux := http.NewServeMux()
	a.mux = mux
	mux.HandleFunc("POST "+client.PathMessages, a.submit)
	mux.HandleFunc("GET "+client.PathMessages+"/{id}", a.get)
	mux.HandleFunc("GET "+client.PathMessages+"/{id}/proof", a.proof)
	mux.HandleFunc("GET "+client.PathInbox, a.inbox)
	mux.HandleFunc("POST "+client.PathAck, a.ack)
	mux.HandleFunc("GET "+client.PathStatus, a.status)
	mux.Handle("GET /metrics", n.metrics.handler())
	mux.Handle("GET /healthz", healthHandler(n.health.healthz))
	mux.Handle("GET /readyz", healthHandler(n.health.readyz))
	a.adminRoutes(mux)
	a.auditRoutes(mux)   // audit_api.go
	a.releaseRoutes(mux) // release.go
	a.srv = &http.Server{
		Handler:           n.guard(http.HandlerFunc(a.route)),
		ReadHeaderTimeout: lim.HeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := peerCred(c)
			if err != nil {
				return ctx
			}
			id := &callerID{cred: cred}
			id.groups, _ = peerGroups(c) // mailbox.go; without them, the primary group counts
			return context.WithValue(context.WithValue(ctx, credKey{}, cred), callerKey{}, id)
		},
	}
	go func() {
		if err := a.srv.Serve(newLimitListener(ln, lim.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
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

// callerOf returns who called: credentials and groups (mailbox.go).
func callerOf(r *http.Request) *callerID {
	c, _ := r.Context().Value(callerKey{}).(*callerID)
	if c == nil {
		return &callerID{}
	}
	return c
}

// route checks what every endpoint shares, then hands the request to its
// handler: a path without an endpoint is a 404 and a wrong method a 405
// (with Allow), both as JSON errors; the query is parsed strictly (see
// routeParams); a request body must arrive within BodyTimeout.
func (a *apiServer) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		a.noRoute(w, r, h)
		return
	}
	allowed, listed := routeParams[pattern]
	if !listed {
		allowed = nil
	}
	if _, err := parseQuery(r.URL.RawQuery, allowed); err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(a.lim.BodyTimeout)) == nil {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
	}
	a.mux.ServeHTTP(w, r)
}

// noRoute answers a request no endpoint takes, as the mux would but in
// the API's JSON error form.
func (a *apiServer) noRoute(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	var methods []string // those the path takes, as the mux's Allow lists them
	for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPatch, http.MethodPost, http.MethodPut} {
		probe := *r
		probe.Method = m
		if _, pattern := a.mux.Handler(&probe); pattern != "" {
			methods = append(methods, m)
		}
	}
	if len(methods) > 0 {
		allow := strings.Join(methods, ", ")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %q (allowed: %s)", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no endpoint %s %q (see the README's socket API)", r.Method, r.URL.Path))
}

// deadlineBody lifts the body's read deadline once the body is read, so
// that the server's watch for a closed connection is not cut short while
// the handler waits (a long-poll, a submit's wait).
type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// park takes one of the MaxWaiters places for a request that will wait
// (an inbox long-poll, a submit's wait); false when none is free.
func (a *apiServer) park() bool {
	select {
	case a.waiters <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *apiServer) unpark() { <-a.waiters }

func (a *apiServer) writeBusy(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, client.CodeBusy, fmt.Sprintf(
		"%d requests are already waiting on this node (inbox long-polls and submit waits); retry later, or without wait", a.lim.MaxWaiters))
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
	case errors.Is(err, consensus.ErrStorageFull):
		a.writeStorageFull(w)
	case errors.Is(err, ErrNoQuorum), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, client.CodeNoQuorum, fmt.Sprintf(
			"site %s did not commit within %v (no leader or no majority reachable): %v; retrying with the same id is safe",
			a.cfg.Site, a.cfg.SubmitTimeout, err))
	default:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
	}
}

// writeSendError maps a failed sender.send to a reply.
func (a *apiServer) writeSendError(w http.ResponseWriter, key string, err error) {
	var ce *commitError
	var mr *mailboxRefusal
	var pe *payloadError
	switch {
	case errors.As(err, &ce):
		// It may have committed after all: name the id it would have.
		w.Header().Set(client.HeaderMessageID, ce.ID)
		a.writeProposeError(w, ce.err)
	case errors.As(err, &pe) && pe.tooLarge: // sender.go: the STIX check's bound
		writeError(w, http.StatusRequestEntityTooLarge, client.CodeTooLarge, err.Error())
	case errors.Is(err, errInvalidPayload): // sender.go: the STIX check
		writeError(w, http.StatusBadRequest, client.CodeInvalidPayload, err.Error())
	case errors.As(err, &mr): // the destination's mailbox list
		writeError(w, http.StatusBadRequest, mr.code, mr.msg)
	case errors.Is(err, queue.ErrKeyConflict):
		writeError(w, http.StatusConflict, client.CodeKeyConflict, fmt.Sprintf("id %q was already used for a different message (destination, precedence or content differ)", key))
	case errors.Is(err, queue.ErrResyncing): // backup.go
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, err.Error())
	case errors.Is(err, errRefused):
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
	}
}

const maxKeyLen = 256

func (a *apiServer) submit(w http.ResponseWriter, r *http.Request) {
	if a.health.storageFull() != nil {
		a.writeStorageFull(w)
		return
	}
	q := queryOf(r.URL.RawQuery)
	to, toBox, err := parseAddress(q["to"]) // mailbox.go
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "missing destination: set to=SITE")
		return
	case to == a.cfg.Site:
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("destination %q is this site; send to another site (%s)", to, strings.Join(a.cfg.remoteSites(), ", ")))
		return
	case a.cfg.siteConfig(to) == nil:
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("unknown destination site %q (configured: %s)", to, strings.Join(a.cfg.remoteSites(), ", ")))
		return
	}
	fromBox, err := parseMailbox(q["from"])
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "from: "+err.Error())
		return
	}
	if msg, ok := a.cfg.mailboxes().check(callerOf(r), fromBox, RightSend); !ok {
		writeError(w, http.StatusForbidden, client.CodeForbidden, msg)
		return
	}
	mtype, err := canonicalType(q["type"]) // mailbox.go: one spelling for every check
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "type: "+err.Error())
		return
	}
	if mtype == "application/octet-stream" {
		mtype = "" // the default, stored as ""
	}
	prec, err := queue.ParsePrecedence(q["precedence"])
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "precedence "+err.Error())
		return
	}
	key := q["id"] // the router refused control characters and invalid UTF-8
	if len(key) > maxKeyLen {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("id is %d bytes; it must be at most %d", len(key), maxKeyLen))
		return
	}
	ttl, err := q.duration("ttl", 0, maxTTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	wait := queue.Queued
	if s := q["wait"]; s != "" {
		if wait, err = queue.ParseState(s); err != nil || wait == queue.Expired || wait == queue.Held || wait == queue.Refused {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("wait=%q is not queued, delivered or read", s))
			return
		}
	}
	timeout, err := q.duration("timeout", 30*time.Second, maxSubmitWait)
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	var flags uint32
	if s := q["drill"]; s != "" {
		drill, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("drill=%q is not true or false", s))
			return
		}
		if drill && !a.ops.isAdmin(caller(r)) {
			writeError(w, http.StatusForbidden, client.CodeForbidden, "drill traffic: "+a.ops.forbidden(caller(r)))
			return
		}
		if drill {
			flags |= queue.FlagDrill
		}
	}
	limit := a.cfg.MaxMessageSize
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
	if wait > queue.Queued {
		if !a.park() {
			a.writeBusy(w) // before the commit: nothing is stored
			return
		}
		defer a.unpark()
	}

	item := queue.SubmitItem{Key: key, Dest: to, Precedence: prec, Payload: payload, Flags: flags,
		Mailbox: toBox, From: fromBox, Type: mtype}
	if ttl > 0 {
		item.ExpiresAt = time.Now().Add(ttl).UnixNano()
	}
	submitted := time.Now()
	// sender.go, shared with the spool directories: the checks of every
	// submission, then seal and commit (or hold, for two-person release).
	res, err := a.send.send(r.Context(), item, actorOf(callerOf(r).cred))
	if err != nil {
		a.writeSendError(w, key, err)
		return
	}
	// The message is committed: from here on the reply is never an
	// error. If the wanted state was not reached it is 202 with the state
	// reached; committed is queued even when this node has not applied it
	// yet.
	st := a.waitState(r.Context(), res.ID, wait, timeout)
	var m *client.Message
	if st != nil {
		m = messageView(st)
	} else {
		m = &client.Message{ID: res.ID, Key: key, Direction: string(queue.Outbound), From: a.cfg.Site, To: to,
			Mailbox: queue.MailboxName(toBox), FromMailbox: queue.MailboxName(fromBox), Type: typeName(mtype), Precedence: prec.String(), Seq: res.Seq, Size: len(payload), PayloadSHA256: plainSum(payload), State: queue.Queued.String(), SubmittedAt: submitted.UTC()}
		if res.Seq == 0 {
			m.State = queue.Held.String() // held for release: no sequence yet
		}
	}
	m.Existing = res.Existing
	code := http.StatusCreated
	switch {
	case st == nil && wait > queue.Queued, st != nil && !stateReached(st.State, wait):
		m.WaitTimedOut = true
		code = http.StatusAccepted
	case res.Existing:
		code = http.StatusOK
	}
	writeJSON(w, code, m)
}

// stateReached reports whether have satisfies a wait for want: have is
// at least want (read implies delivered), or final (expired, refused),
// never to move on. A held message (release.go) satisfies a wait for
// queued, the default: it is stored at the origin, and waits for a
// person; a wait for delivered or read waits for its release too, and
// ends with 202 and state held if nobody releases it within the timeout.
func stateReached(have, want queue.State) bool {
	return have.Final() || have.AtLeast(want) || have == queue.Held && want == queue.Queued
}

// waitState waits until the message reaches want in this node's copy of
// the state, or timeout passes, the request ends or the node stops, and
// returns its status then: nil when this node has not applied it yet (the
// submit has committed, but a follower may apply it a moment later) or
// cannot read it.
func (a *apiServer) waitState(ctx context.Context, id string, want queue.State, timeout time.Duration) *queue.Status {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		changed := a.store.Changed()
		st, err := a.store.Lookup(id)
		if err != nil && !errors.Is(err, queue.ErrNotFound) {
			a.log.Warn("submit: reading the committed message", "id", id, "err", err)
			return nil
		}
		if err == nil && stateReached(st.State, want) {
			return st
		}
		select {
		case <-changed:
		case <-t.C:
			return st
		case <-ctx.Done():
			return st
		case <-a.stop.Done():
			return st
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
	size, sum := payloadInfo(&m)
	return &client.Message{
		ID: m.ID, Key: m.Key, Direction: string(st.Direction), From: m.Origin, To: m.Dest,
		Mailbox: queue.MailboxName(m.Mailbox), FromMailbox: queue.MailboxName(m.From), Type: typeName(m.Type),
		Precedence: m.Precedence.String(), Seq: m.Seq, Size: size, PayloadSHA256: sum, State: st.State.String(),
		SubmittedAt: time.Unix(0, st.SubmittedAt).UTC(),
		DeliveredAt: tptr(st.DeliveredAt), ReadAt: tptr(st.ReadAt), ExpiredAt: tptr(st.ExpiredAt), ExpiresAt: tptr(m.ExpiresAt),
		RefusedAt: tptr(st.RefusedAt), RefusedReason: st.RefusedReason,
	}
}

// typeName is a message's media type as the API shows it.
func typeName(t string) string {
	if t == "" {
		return "application/octet-stream"
	}
	return t
}

func (a *apiServer) get(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	id := r.PathValue("id")
	st, err := a.store.Lookup(id)
	if errors.Is(err, queue.ErrNotFound) {
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no message with id %q at site %s", id, a.cfg.Site))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	if msg, ok := a.mayView(callerOf(r), st); !ok {
		writeError(w, http.StatusForbidden, client.CodeForbidden, fmt.Sprintf("message %q: %s", id, msg))
		return
	}
	v := messageView(st)
	a.objectives.annotate(v, st) // objectives.go
	writeJSON(w, http.StatusOK, v)
}

// mayView reports whether who may see message st's status and evidence:
// an inbound one (a notice included) with the read or ack right on its
// mailbox, an outbound one with the send or release right on the mailbox
// it was sent from (root always). Otherwise it returns the 403 message,
// naming the mailbox and the first right.
func (a *apiServer) mayView(who *callerID, st *queue.Status) (string, bool) {
	mbox, box, rights := a.cfg.mailboxes(), st.Message.From, []Right{RightSend, RightRelease}
	if st.Direction == queue.Inbound {
		box, rights = st.Message.Mailbox, []Right{RightRead, RightAck}
	}
	msg, ok := mbox.check(who, box, rights[0])
	if !ok {
		_, ok = mbox.check(who, box, rights[1])
	}
	return msg, ok
}
