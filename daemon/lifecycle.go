package daemon

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport"
)

// Errors for work that arrives while a node cannot take it. Both are
// retryable: a peer or client tries again shortly, or on another node.
// In a call's reply and in a batch's ack they keep their identity
// (callCodes; [retryable] recognises them); on the socket API they are 503
// unavailable with a Retry-After header.
var (
	ErrStarting = errors.New("node is starting; retry shortly")
	ErrStopping = errors.New("node is stopping; retry on another node")
)

// nodeState is where a Node is in its life.
//
//	starting ──Open done──> running ──Close──> stopping ──> stopped
//	    │                                          ▲
//	    └──────────── Open failed ─────────────────┘
//
// Only a running node takes work: every entry point (the link's batch
// handler and every call of its routing table, the socket API) calls lifecycle.enter, which refuses with
// ErrStarting or ErrStopping otherwise, and exit when done. Every field of
// the Node is set before the state becomes running, so no handler sees a
// half-built node; Close waits (bounded) for the work that entered before
// it closes Raft and the store.
type nodeState int32

const (
	stateStarting nodeState = iota
	stateRunning
	stateStopping
	stateStopped
)

func (s nodeState) String() string {
	switch s {
	case stateStarting:
		return "starting"
	case stateRunning:
		return "running"
	case stateStopping:
		return "stopping"
	default:
		return "stopped"
	}
}

// lifecycle is a node's state and the work in progress under it.
type lifecycle struct {
	state atomic.Int32 // nodeState; written under mu, read without it

	mu       sync.Mutex     // guards transitions against enter
	inflight sync.WaitGroup // work that entered; Add only under mu while running
}

func (l *lifecycle) get() nodeState { return nodeState(l.state.Load()) }

// enter admits one piece of work, or says why not. A nil return must be
// paired with exit.
func (l *lifecycle) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.get() {
	case stateRunning:
		l.inflight.Add(1)
		return nil
	case stateStarting:
		return ErrStarting
	default:
		return ErrStopping
	}
}

func (l *lifecycle) exit() { l.inflight.Done() }

// set moves to s. Moving away from running stops admitting work.
func (l *lifecycle) set(s nodeState) {
	l.mu.Lock()
	l.state.Store(int32(s))
	l.mu.Unlock()
}

// drain waits up to d for the work that entered to finish, and reports
// whether it did. Call it only after leaving running.
func (l *lifecycle) drain(d time.Duration) bool {
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// retryable reports whether err says that a node was starting or
// stopping: its own, or a peer's (a *transport.CallError from a call's
// reply or a batch's ack, wrapping ErrStarting or ErrStopping by its
// code). A refusal without a code comes from a node of an earlier
// version, which sent these errors as text only: for it alone the text
// is read ([retryableText]).
func retryable(err error) bool {
	if errors.Is(err, ErrStarting) || errors.Is(err, ErrStopping) {
		return true
	}
	var ce *transport.CallError
	return errors.As(err, &ce) && ce.Code == "" && retryableText(ce.Msg)
}

// retryableText reports whether the text of an uncoded refusal (the
// Reply.Error or Ack.Error of a node of an earlier version) says that node
// was starting or stopping.
func retryableText(s string) bool {
	return strings.Contains(s, ErrStarting.Error()) || strings.Contains(s, ErrStopping.Error())
}

// guard admits a socket API request only while the node runs; otherwise it
// answers 503 unavailable, retryable.
func (n *Node) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := n.life.enter(); err != nil {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, n.cfg.Node+": "+err.Error())
			return
		}
		defer n.life.exit()
		h.ServeHTTP(w, r)
	})
}
