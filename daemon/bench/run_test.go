package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// link is an in-memory pair of sites for the engine's tests, seen
// through the sockets of alpha-1 (sending) and bravo-2 (receiving). A
// submit commits once per key (a retry of a key answers with the first
// commit) and puts the message into bravo's inbox at once, under a new id
// and position per copy; an inbox read long-polls as the daemon's does.
// Every call honours its ctx, as the real client does.
type link struct {
	mu       sync.Mutex
	byKey    map[string]*client.Message
	attempts map[string]int
	reqs     []client.SubmitRequest // every attempt, in order
	inbox    []client.InboxMessage
	acked    map[string]int // id -> acks
	seq      uint64

	copies      func(i int) int        // copies of message i that arrive (default 1)
	refuseFirst func(i int) bool       // the first attempt commits but answers 503 (outcome unknown)
	reject      func(i int) error      // every attempt is refused with this, nothing committed
	inboxErr    func(reads int) error  // the reads-th (1-based) inbox read fails with this
	onSubmit    func(i int)            // after a commit
	status      map[string]statusReply // by node: what Status answers
	reads       int
}

type statusReply struct {
	site string
	err  error
}

func newLink() *link {
	return &link{byKey: map[string]*client.Message{}, attempts: map[string]int{}, acked: map[string]int{},
		status: map[string]statusReply{"alpha-1": {site: "alpha"}, "bravo-2": {site: "bravo"}}}
}

// node is one daemon of the link: Daemon as its socket offers it.
type node struct {
	l    *link
	name string
}

var _ Daemon = (*node)(nil)

// index is the message index a bench key names ("bench-RUN-I").
func index(key string) int {
	i, err := strconv.Atoi(key[strings.LastIndexByte(key, '-')+1:])
	if err != nil {
		panic("test: bench key " + key)
	}
	return i
}

func (n *node) Status(ctx context.Context) (*client.Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := n.l.status[n.name]
	if st.err != nil {
		return nil, st.err
	}
	return &client.Status{Site: st.site, Node: n.name, Role: "leader", Version: "test"}, nil
}

func (n *node) Submit(ctx context.Context, req client.SubmitRequest) (*client.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := n.l
	i := index(req.Key)
	l.mu.Lock()
	l.reqs = append(l.reqs, req)
	l.attempts[req.Key]++
	attempt := l.attempts[req.Key]
	if l.reject != nil {
		if err := l.reject(i); err != nil {
			l.mu.Unlock()
			return nil, err
		}
	}
	m, ok := l.byKey[req.Key]
	if ok {
		l.mu.Unlock()
		e := *m
		e.Existing = true
		return &e, nil
	}
	l.seq++
	m = &client.Message{ID: "m" + strconv.FormatUint(l.seq, 10), Key: req.Key, From: "alpha", To: req.To,
		Precedence: req.Precedence, Seq: l.seq, Size: len(req.Payload), State: "queued"}
	l.byKey[req.Key] = m
	copies := 1
	if l.copies != nil {
		copies = l.copies(i)
	}
	for c := range copies {
		pos := uint64(len(l.inbox) + 1)
		l.inbox = append(l.inbox, client.InboxMessage{ID: m.ID + "-" + strconv.Itoa(c), Key: req.Key, From: "alpha",
			Precedence: req.Precedence, Seq: m.Seq, Pos: pos, Payload: bytes.Clone(req.Payload)})
	}
	refuse := l.refuseFirst != nil && attempt == 1 && l.refuseFirst(i)
	onSubmit := l.onSubmit
	l.mu.Unlock()
	if onSubmit != nil {
		onSubmit(i)
	}
	if refuse {
		return nil, &client.APIError{Status: http.StatusServiceUnavailable, Code: client.CodeNoQuorum, Message: "test: no quorum in time", ID: m.ID}
	}
	return m, nil
}

func (n *node) Inbox(ctx context.Context, after uint64, max int, wait time.Duration) (*client.Inbox, error) {
	l := n.l
	l.mu.Lock()
	l.reads++
	var err error
	if l.inboxErr != nil {
		err = l.inboxErr(l.reads)
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.mu.Lock()
		in := &client.Inbox{Next: after}
		for _, m := range l.inbox {
			if m.Pos > after && len(in.Messages) < max {
				in.Messages = append(in.Messages, m)
				in.Next = m.Pos
			}
		}
		l.mu.Unlock()
		if len(in.Messages) > 0 || !time.Now().Before(deadline) {
			return in, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *node) Ack(ctx context.Context, ids []string) (*client.AckReply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := n.l
	l.mu.Lock()
	defer l.mu.Unlock()
	known := map[string]bool{}
	for _, m := range l.inbox {
		known[m.ID] = true
	}
	for _, id := range ids {
		if !known[id] {
			return nil, &client.APIError{Status: http.StatusNotFound, Code: client.CodeNotFound, Message: "no message " + id}
		}
	}
	for _, id := range ids {
		l.acked[id]++
	}
	return &client.AckReply{Acked: len(ids)}, nil
}

// syncBuffer is a log the engine's goroutines may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testOptions(n int) Options {
	return Options{To: "bravo", Precedence: "priority", N: n, Size: 64, Concurrency: 4, Timeout: 5 * time.Second}
}

// runBench benches o over l and fails the test on an invalid o.
func runBench(t *testing.T, ctx context.Context, l *link, o Options) (*Result, string, error) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	var log syncBuffer
	res, err := Run(ctx, &node{l, "alpha-1"}, &node{l, "bravo-2"}, o, &log)
	return res, log.String(), err
}

func TestRunDeliversEveryMessageOnce(t *testing.T) {
	l := newLink()
	// A foreign message waits in the inbox: not this run's, not acked.
	l.inbox = append(l.inbox, client.InboxMessage{ID: "other", Pos: 1, Payload: []byte("hello bravo")})
	o := testOptions(40)
	res, log, err := runBench(t, t.Context(), l, o)
	if err != nil {
		t.Fatalf("Run: %v (log: %s)", err, log)
	}
	if err := res.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	if res.N != 40 || res.Submitted != 40 || res.Delivered != 40 || res.Lost != 0 || res.Duplicated != 0 || res.FailedSubmits != 0 {
		t.Errorf("result %+v, want 40 submitted and delivered, none lost, duplicated or failed", res)
	}
	if res.Size != 64 || res.Concurrency != 4 || res.Rate != 0 || res.Precedence != "priority" || len(res.RunID) != 16 {
		t.Errorf("result echoes size %d, concurrency %d, rate %g, precedence %q, run %q; want the options and a 16-digit run id",
			res.Size, res.Concurrency, res.Rate, res.Precedence, res.RunID)
	}
	if res.E2EMax < res.E2EP50 || res.SubmitMax < res.SubmitP50 || res.MsgsPerSec <= 0 {
		t.Errorf("latencies or throughput out of order: %+v", res)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, req := range l.reqs {
		if req.To != "bravo" || req.Precedence != "priority" || len(req.Payload) != 64 {
			t.Errorf("submit to %q at %q with %d bytes, want bravo, priority, 64", req.To, req.Precedence, len(req.Payload))
		}
		if !strings.HasPrefix(req.Key, "bench-"+res.RunID+"-") {
			t.Errorf("key %q does not name run %s", req.Key, res.RunID)
		}
	}
	if len(l.byKey) != 40 {
		t.Errorf("%d distinct keys submitted, want 40", len(l.byKey))
	}
	for _, m := range l.inbox[1:] {
		if l.acked[m.ID] != 1 {
			t.Errorf("message %s acked %d times, want once", m.ID, l.acked[m.ID])
		}
	}
	if l.acked["other"] != 0 {
		t.Errorf("a foreign message was acked")
	}
}

// TestRunRetriesWithTheSameKey: a submit whose outcome was unknown (it
// committed, the answer was 503) is retried under its key and counted
// once, neither failed nor duplicated.
func TestRunRetriesWithTheSameKey(t *testing.T) {
	l := newLink()
	l.refuseFirst = func(i int) bool { return i%5 == 0 }
	res, log, err := runBench(t, t.Context(), l, testOptions(20))
	if err != nil {
		t.Fatalf("Run: %v (log: %s)", err, log)
	}
	if err := res.Check(); err != nil || res.Submitted != 20 || res.Delivered != 20 {
		t.Errorf("Check = %v, submitted %d, delivered %d; want nil, 20, 20", err, res.Submitted, res.Delivered)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, n := range l.attempts {
		want := 1
		if index(key)%5 == 0 {
			want = 2
		}
		if n != want {
			t.Errorf("%s submitted %d times, want %d", key, n, want)
		}
	}
}

func TestRunCountsFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(l *link)
		lost      int
		dup       int
		failed    int
		delivered int
		check     string // in Check's error
		log       string // in the log
	}{
		{
			name:  "a duplicate in the inbox",
			setup: func(l *link) { l.copies = func(i int) int { return 1 + btoi(i == 3) } },
			dup:   1, delivered: 10, check: "0 lost, 1 duplicated, 0 failed submits",
		},
		{
			name:  "a committed message that never arrives",
			setup: func(l *link) { l.copies = func(i int) int { return 1 - btoi(i == 7) } },
			lost:  1, delivered: 9, check: "1 lost, 0 duplicated, 0 failed submits",
		},
		{
			name: "a submit refused for good",
			setup: func(l *link) {
				l.reject = func(i int) error {
					if i == 2 {
						return &client.APIError{Status: http.StatusRequestEntityTooLarge, Code: client.CodeTooLarge, Message: "test: too large"}
					}
					return nil
				}
			},
			failed: 1, delivered: 9, check: "0 lost, 0 duplicated, 1 failed submits",
			log: "bench: 1 submits failed: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLink()
			tt.setup(l)
			o := testOptions(10)
			o.Timeout = 300 * time.Millisecond // the lost message is given up on after this
			res, log, err := runBench(t, t.Context(), l, o)
			if err != nil {
				t.Fatalf("Run: %v (log: %s)", err, log)
			}
			if res.Lost != tt.lost || res.Duplicated != tt.dup || res.FailedSubmits != tt.failed || res.Delivered != tt.delivered {
				t.Errorf("lost/duplicated/failed/delivered = %d/%d/%d/%d, want %d/%d/%d/%d",
					res.Lost, res.Duplicated, res.FailedSubmits, res.Delivered, tt.lost, tt.dup, tt.failed, tt.delivered)
			}
			if err := res.Check(); err == nil || !strings.Contains(err.Error(), tt.check) {
				t.Errorf("Check = %v, want an error with %q", err, tt.check)
			}
			if !strings.Contains(log, tt.log) {
				t.Errorf("log %q lacks %q", log, tt.log)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRunRefusesBeforeSubmitting: a daemon that does not answer, or a
// receiver of another site, ends the bench before any message is sent.
func TestRunRefusesBeforeSubmitting(t *testing.T) {
	unreachable := &client.UnreachableError{Socket: "/x.sock", Err: errors.New("connect: no such file or directory")}
	tests := []struct {
		name   string
		status map[string]statusReply
		want   string
	}{
		{"sender down", map[string]statusReply{"alpha-1": {err: unreachable}, "bravo-2": {site: "bravo"}}, "bench: sending daemon: "},
		{"receiver down", map[string]statusReply{"alpha-1": {site: "alpha"}, "bravo-2": {err: unreachable}}, "bench: receiving daemon: "},
		{"receiver of another site", map[string]statusReply{"alpha-1": {site: "alpha"}, "bravo-2": {site: "alpha"}},
			`bench: the receiving daemon is node bravo-2 of site "alpha", not of --to site "bravo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLink()
			l.status = tt.status
			res, _, err := runBench(t, t.Context(), l, testOptions(5))
			if res != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, %v; want no result and an error with %q", res, err, tt.want)
			}
			if strings.Contains(tt.name, "down") && !errors.Is(err, client.ErrUnreachable) {
				t.Errorf("error %v does not match client.ErrUnreachable", err)
			}
			if ws, ok := errors.AsType[*WrongSiteError](err); strings.Contains(tt.name, "another") && (!ok || ws.Site != "alpha" || ws.To != "bravo") {
				t.Errorf("error %v is not a WrongSiteError naming alpha and bravo", err)
			}
			if len(l.reqs) != 0 {
				t.Errorf("%d submits made before the bench could run", len(l.reqs))
			}
		})
	}
}

// TestRunInterrupted: ctx ending the bench returns the result so far with
// ErrInterrupted; the submits it cut short are failures named so.
func TestRunInterrupted(t *testing.T) {
	l := newLink()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l.onSubmit = func(i int) {
		if i == 10 {
			cancel()
		}
	}
	o := testOptions(1000)
	o.Rate = 200
	res, log, err := runBench(t, ctx, l, o)
	if !errors.Is(err, ErrInterrupted) || err.Error() != "bench: interrupted" {
		t.Fatalf("Run error %v, want bench: interrupted", err)
	}
	if res == nil || res.Submitted < 10 || res.Submitted+res.FailedSubmits >= 1000 {
		t.Fatalf("result %+v, want the 10 or more submits before the interruption and not all 1000", res)
	}
	if res.FailedSubmits > 0 && !strings.Contains(log, "submits failed: interrupted") {
		t.Errorf("log %q does not name the interrupted submits", log)
	}
}

// TestRunInboxErrors: a retryable inbox error is logged and retried; one
// that retrying does not fix ends the bench with that error.
func TestRunInboxErrors(t *testing.T) {
	busy := &client.APIError{Status: http.StatusServiceUnavailable, Code: client.CodeBusy, Message: "test: busy"}
	l := newLink()
	l.inboxErr = func(reads int) error {
		if reads == 1 {
			return busy
		}
		return nil
	}
	res, log, err := runBench(t, t.Context(), l, testOptions(10))
	if err != nil || res.Check() != nil {
		t.Fatalf("Run = %+v, %v after one busy read; want a passing bench (log: %s)", res, err, log)
	}
	if !strings.Contains(log, "bench: read inbox: hotlined: test: busy (busy); retrying in 250ms") {
		t.Errorf("log %q does not report the retried read", log)
	}

	l = newLink()
	l.inboxErr = func(int) error {
		return &client.APIError{Status: http.StatusForbidden, Code: client.CodeForbidden, Message: "test: not yours"}
	}
	res, log, err = runBench(t, t.Context(), l, testOptions(10))
	if err == nil || !strings.HasPrefix(err.Error(), "bench: read inbox: ") || errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run error %v, want bench: read inbox: … (log: %s)", err, log)
	}
	if res == nil || res.Delivered != 0 {
		t.Errorf("result %+v, want one with nothing delivered", res)
	}
}

// TestRunPacesAndReportsProgress: with a rate, n messages take at least
// (n-1)/rate seconds, and a run over a second logs progress.
func TestRunPacesAndReportsProgress(t *testing.T) {
	l := newLink()
	o := testOptions(31)
	o.Rate = 20
	start := time.Now()
	res, log, err := runBench(t, t.Context(), l, o)
	if err != nil || res.Check() != nil {
		t.Fatalf("Run = %+v, %v (log: %s)", res, err, log)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("31 messages at 20/s took %s, want at least 1.5s", d)
	}
	if !strings.Contains(log, "bench: submitted ") || !strings.Contains(log, "/31 (ok ") {
		t.Errorf("log %q has no progress line", log)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		edit func(o *Options)
		want string
	}{
		{func(o *Options) { o.To = "" }, "--to SITE is required"},
		{func(o *Options) { o.N = 0 }, "--n 0 is out of range (at least 1, at most 1000000)"},
		{func(o *Options) { o.N = MaxN + 1 }, "--n 1000001 is out of range (at least 1, at most 1000000)"},
		{func(o *Options) { o.Size = HeaderSize - 1 }, "--size 23 is too small (at least 24 bytes, for the bench header)"},
		{func(o *Options) { o.Concurrency = 0 }, "--concurrency 0 is out of range (at least 1, at most 1024)"},
		{func(o *Options) { o.Concurrency = MaxConcurrency + 1 }, "--concurrency 1025 is out of range (at least 1, at most 1024)"},
		{func(o *Options) { o.Rate = -5 }, "--rate -5 is negative"},
		{func(o *Options) { o.Timeout = 0 }, "--timeout 0s must be positive"},
		{func(o *Options) { o.To = "BRAVO" }, "--to: pki: name"},
	}
	for _, tt := range tests {
		o := testOptions(1)
		tt.edit(&o)
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", o, err, tt.want)
		}
	}
	o := testOptions(1)
	o.Size = HeaderSize
	if err := o.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v, want nil", o, err)
	}
	o.Concurrency = 0
	l := newLink()
	if res, err := Run(t.Context(), &node{l, "alpha-1"}, &node{l, "bravo-2"}, o, io.Discard); res != nil || err == nil ||
		err.Error() != "bench: --concurrency 0 is out of range (at least 1, at most 1024)" {
		t.Errorf("Run with invalid options = %v, %v; want no result and Validate's error", res, err)
	}
}
