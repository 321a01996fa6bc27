package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// site is an in-memory origin site for the engine's tests, seen through
// the socket of alpha-1: nodes alpha-1..3 (leader alpha-2), WAN paths
// fiber (active) and sat to bravo-1..3. A submit commits once per key (a
// retry of a key answers with the first commit); a committed canary
// arrives at bravo at once while the leader has a path up, else when one
// comes back. Every call honours its ctx, as the real client does.
type site struct {
	mu         sync.Mutex
	leader     string
	down       map[string]bool // "node/path" cut
	byKey      map[string]*client.Message
	attempts   map[string]int
	seq        uint64 // last origin sequence
	arrivals   []client.Arrival
	held       []client.Arrival // committed while every leader path was down
	downs, ups []string         // "node/path" of each successful call, in order

	refuseFirst func(key string) bool                // the first attempt commits but answers 503 (outcome unknown)
	onDown      func(node, path string)              // after each cut
	upErr       func(node, path string, n int) error // the n-th (1-based) PathUp of node/path fails with this
	upCalls     map[string]int
}

func newSite() *site {
	return &site{leader: "alpha-2", down: map[string]bool{}, byKey: map[string]*client.Message{},
		attempts: map[string]int{}, upCalls: map[string]int{}}
}

var _ Cluster = (*site)(nil)

func (s *site) Status(ctx context.Context) (*client.Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &client.Status{Site: "alpha", Node: "alpha-1", Role: "follower", Leader: s.leader, Version: "test"}
	for _, n := range []string{"alpha-2", "alpha-3"} {
		st.Peers = append(st.Peers, client.Peer{Site: "alpha", Node: n})
	}
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3"} {
		st.Peers = append(st.Peers, client.Peer{Site: "bravo", Node: n})
	}
	return st, nil
}

func (s *site) Paths(ctx context.Context, node string) (*client.PathsReply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if node == "" {
		node = "alpha-1"
	}
	r := &client.PathsReply{Site: "alpha", Node: node}
	for _, p := range []string{"fiber", "sat"} {
		state := client.PathUp
		if s.down[node+"/"+p] {
			state = client.PathDown
		}
		r.Admin = append(r.Admin, client.PathAdmin{Node: node, Path: p, State: state})
		for _, b := range []string{"bravo-1", "bravo-2", "bravo-3"} {
			r.Paths = append(r.Paths, client.PathInfo{Site: "bravo", Node: b, Path: p, State: state,
				Active: b == "bravo-1" && p == "fiber" && state == client.PathUp})
		}
	}
	return r, nil
}

func (s *site) PathDown(ctx context.Context, node, path, mode string) (*client.PathAdmin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if node == "" {
		node = "alpha-1"
	}
	s.mu.Lock()
	s.down[node+"/"+path] = true
	s.downs = append(s.downs, node+"/"+path)
	onDown := s.onDown
	s.mu.Unlock()
	if onDown != nil {
		onDown(node, path)
	}
	return &client.PathAdmin{Node: node, Path: path, State: client.PathDown, Mode: mode}, nil
}

func (s *site) PathUp(ctx context.Context, node, path string) (*client.PathAdmin, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if node == "" {
		node = "alpha-1"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upCalls[node+"/"+path]++
	if s.upErr != nil {
		if err := s.upErr(node, path, s.upCalls[node+"/"+path]); err != nil {
			return nil, err
		}
	}
	delete(s.down, node+"/"+path)
	s.ups = append(s.ups, node+"/"+path)
	if s.linkUpLocked() {
		s.arrivals = append(s.arrivals, s.held...)
		s.held = nil
	}
	return &client.PathAdmin{Node: node, Path: path, State: client.PathUp}, nil
}

func (s *site) TransferLeader(ctx context.Context, site, to string) (*client.LeaderTransfer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.leader
	s.leader = "alpha-3"
	return &client.LeaderTransfer{Site: "alpha", From: from, To: s.leader}, nil
}

func (s *site) Arrivals(ctx context.Context, site, prec string, after uint64, limit int) (*client.ArrivalsReply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &client.ArrivalsReply{Site: site, Precedence: prec, Next: after}
	for _, a := range s.arrivals {
		r.Last = max(r.Last, a.Seq)
	}
	for _, a := range s.arrivals {
		if a.Seq > after && len(r.Arrivals) < limit {
			r.Arrivals = append(r.Arrivals, a)
			r.Next = a.Seq
		}
	}
	return r, nil
}

func (s *site) Submit(ctx context.Context, req client.SubmitRequest) (*client.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[req.Key]++
	if m, ok := s.byKey[req.Key]; ok {
		again := *m
		again.Existing = true
		return &again, nil
	}
	s.seq++
	now := time.Now()
	m := &client.Message{ID: fmt.Sprintf("m%d", s.seq), Key: req.Key, From: "alpha", To: req.To, Seq: s.seq, SubmittedAt: now}
	s.byKey[req.Key] = m
	a := client.Arrival{Seq: s.seq, ID: m.ID, Key: req.Key, SubmittedAt: now, ArrivedAt: now}
	if s.linkUpLocked() {
		s.arrivals = append(s.arrivals, a)
	} else {
		s.held = append(s.held, a)
	}
	if s.refuseFirst != nil && s.attempts[req.Key] == 1 && s.refuseFirst(req.Key) {
		return nil, &client.APIError{Status: http.StatusServiceUnavailable, Code: client.CodeNoQuorum, Message: "test: no quorum in time"}
	}
	return m, nil
}

// linkUpLocked reports whether the leader has a WAN path up. s.mu must be
// held.
func (s *site) linkUpLocked() bool {
	return !s.down[s.leader+"/fiber"] || !s.down[s.leader+"/sat"]
}

// cancelAfterCuts is an onDown hook that interrupts the drill once n
// paths are cut.
func cancelAfterCuts(s *site, n int, cancel context.CancelFunc) func(node, path string) {
	return func(string, string) {
		s.mu.Lock()
		cut := len(s.downs)
		s.mu.Unlock()
		if cut == n {
			cancel()
		}
	}
}

// runOn prepares and runs a drill of scenario on s (20 canaries/s for
// the shortest duration). It returns Run's result, the progress log (written
// to a file, as the CLI writes it to stderr) and Run's error.
func runOn(t *testing.T, ctx context.Context, s *site, scenario string) (*Result, string, error) {
	t.Helper()
	p, err := Prepare(ctx, s, testOptions(scenario))
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	name := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Run(ctx, s, p, f)
	log, rerr := os.ReadFile(name)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return res, string(log), err
}

func testOptions(scenario string) Options {
	return Options{To: "bravo", Scenario: scenario, Precedence: "routine", Rate: 20,
		Duration: MinDuration, Drain: 10 * time.Second, Size: 32}
}

// Canaries whose first submit committed but answered "no quorum" are
// retried with the same key: nothing is lost or duplicated, and the
// leadership transfer is in the events.
func TestRunRetriedSubmitsAreNotDuplicated(t *testing.T) {
	s := newSite()
	s.refuseFirst = func(key string) bool { return strings.HasSuffix(key, "7") }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, log, err := runOn(t, ctx, s, TransferOriginLeader)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log)
	}
	r := res.Report
	if !r.Passed || r.Lost != 0 || r.Duplicated != 0 || r.Unacked != 0 || r.Sent != r.Canaries || r.Planned != 120 || !r.RateHeld {
		t.Errorf("report: passed %v, lost %d, duplicated %d, unacked %d, sent %d of %d, planned %d, rate held %v",
			r.Passed, r.Lost, r.Duplicated, r.Unacked, r.Sent, r.Canaries, r.Planned, r.RateHeld)
	}
	retried := 0
	s.mu.Lock()
	for key, n := range s.attempts {
		if n > 1 {
			retried++
			if !strings.HasSuffix(key, "7") {
				t.Errorf("canary %s was submitted %d times without being refused", key, n)
			}
		}
	}
	committed := len(s.byKey)
	s.mu.Unlock()
	if retried == 0 || committed != r.Canaries {
		t.Errorf("%d canaries retried, %d committed of %d: want retries and one commit per canary", retried, committed, r.Canaries)
	}
	if !slices.ContainsFunc(r.Events, func(e Event) bool { return strings.Contains(e.What, "leadership of alpha: alpha-2 → alpha-3") }) {
		t.Errorf("events lack the transfer: %+v", r.Events)
	}
	if len(res.Errors) != 0 || len(res.Run) != 8 || !strings.Contains(log, "drill: run "+res.Run+": transfer-origin-leader from alpha to bravo") {
		t.Errorf("errors %v; log:\n%s", res.Errors, log)
	}
}

// A drill interrupted during a cut still brings every cut path back up
// (under a fresh context, retrying a 503), returns ErrInterrupted with
// its result, and says in the report that "lost" may not be final.
func TestRunInterruptedRestoresCuts(t *testing.T) {
	s := newSite()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.onDown = cancelAfterCuts(s, 3, cancel)
	s.upErr = func(node, path string, n int) error {
		if node == "alpha-3" && n == 1 {
			return &client.APIError{Status: http.StatusServiceUnavailable, Code: client.CodeUnavailable, Message: "test: busy"}
		}
		return nil
	}
	res, log, err := runOn(t, ctx, s, CutActivePath)
	if !errors.Is(err, ErrInterrupted) || res == nil {
		t.Fatalf("Run = %v, %v; want a result and ErrInterrupted\n%s", res, err, log)
	}
	s.mu.Lock()
	downs, ups, still := slices.Sorted(slices.Values(s.downs)), slices.Sorted(slices.Values(s.ups)), len(s.down)
	s.mu.Unlock()
	want := []string{"alpha-1/fiber", "alpha-2/fiber", "alpha-3/fiber"}
	if !slices.Equal(downs, want) || !slices.Equal(ups, want) || still != 0 {
		t.Errorf("cut %q, restored %q, %d still down; want %q cut and restored", downs, ups, still, want)
	}
	if len(res.Errors) != 0 {
		t.Errorf("fault errors %v, want none (the 503 is retried)", res.Errors)
	}
	if !slices.ContainsFunc(res.Report.Notes, func(n string) bool { return strings.Contains(n, "interrupted before its drain") }) {
		t.Errorf("notes do not say the drill was interrupted: %q", res.Report.Notes)
	}
}

// A restore the daemon refuses is a fault error naming the path and the
// node, and the log says how to bring the path up by hand.
func TestRunRestoreRefused(t *testing.T) {
	s := newSite()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.onDown = cancelAfterCuts(s, 3, cancel)
	s.upErr = func(node, path string, n int) error {
		if node == "alpha-2" {
			return &client.APIError{Status: http.StatusForbidden, Code: client.CodeForbidden, Message: "uid 1000 is neither root nor in group hotline-admin"}
		}
		return nil
	}
	res, log, err := runOn(t, ctx, s, CutAllButOne)
	if !errors.Is(err, ErrInterrupted) || res == nil {
		t.Fatalf("Run = %v, %v; want a result and ErrInterrupted", res, err)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "drill: restore fiber on alpha-2: permission denied by hotlined: uid 1000") ||
		!client.IsCode(res.Errors[0], client.CodeForbidden) {
		t.Errorf("fault errors %v, want the refused restore of fiber on alpha-2", res.Errors)
	}
	if !strings.Contains(log, "bring it up with: hotlinectl path up fiber --node alpha-2") {
		t.Errorf("log does not say how to restore by hand:\n%s", log)
	}
}

func TestRunWithoutPlan(t *testing.T) {
	if res, err := Run(context.Background(), newSite(), nil, nil); res != nil || err == nil {
		t.Errorf("Run(nil plan) = %v, %v; want an error", res, err)
	}
	if _, err := Prepare(context.Background(), newSite(), Options{To: "bravo"}); err == nil || !strings.Contains(err.Error(), "drill: --scenario is required") {
		t.Errorf("Prepare(no scenario) = %v, want the validation error", err)
	}
}
