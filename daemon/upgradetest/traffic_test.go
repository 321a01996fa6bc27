package upgradetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
)

// pacedTraffic are submitters at a steady rate that outlive any one
// node: each submits through one node of its site and, when that node
// fails (stopped for its upgrade), retries the same key through the next,
// as a client configured with all of its site's sockets does; what is
// acknowledged goes into the Ledger, with the time it was acknowledged.
// clustertest.Submitters and SubmitRetrying stay on one socket, so a
// node's restart would pause the submissions and be measured as a pause
// in delivery. Its methods are safe for concurrent use.
type pacedTraffic struct {
	g      *clustertest.Ledger
	ctx    context.Context
	clock  clock
	stop   atomic.Bool
	acked  atomic.Int64
	wg     sync.WaitGroup
	client func(node string) *client.Client

	mu    sync.Mutex
	errs  []error              // the first error of each submitter that gave up
	acks  map[string]time.Time // acknowledgement time by key
	order []string             // keys in acknowledgement order
}

func newPacedTraffic(ctx context.Context, c clock, g *clustertest.Ledger, clientFor func(node string) *client.Client) *pacedTraffic {
	return &pacedTraffic{g: g, ctx: ctx, clock: c, client: clientFor, acks: map[string]time.Time{}}
}

// Go starts a submitter from site to the other site, one message every
// period, keys "<name>-<i>", starting on the site's node first (0 to 2),
// precedences in rotation; it runs until Stop.
func (p *pacedTraffic) Go(site, name string, first int, period time.Duration) {
	nodes := daemon.LabNodes(site)
	p.wg.Go(func() {
		cur := first
		start := time.Now()
		for i := 0; !p.stop.Load(); i++ {
			if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
				time.Sleep(d)
			}
			key := fmt.Sprintf("%s-%d", name, i)
			prec := queue.Precedences[i%len(queue.Precedences)].String()
			req := client.SubmitRequest{To: other(site), Precedence: prec, Key: key, Payload: []byte(key)}
			for {
				ctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
				m, err := p.client(nodes[cur]).Submit(ctx, req)
				cancel()
				if err == nil {
					p.g.Add(clustertest.Sent{Key: key, ID: m.ID, From: site, To: other(site), Precedence: prec})
					p.acked.Add(1)
					p.mu.Lock()
					p.acks[key] = time.Now()
					p.order = append(p.order, key)
					p.mu.Unlock()
					break
				}
				var ae *client.APIError
				if p.ctx.Err() != nil || errors.As(err, &ae) && ae.Status < 500 {
					p.mu.Lock()
					p.errs = append(p.errs, fmt.Errorf("submit %s: gave up: %w", key, err))
					p.mu.Unlock()
					return
				}
				cur = (cur + 1) % len(nodes) // the same key through the next node
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
}

// Stop ends every submitter after its submission under way, waits for
// them, and fails t on the first error.
func (p *pacedTraffic) Stop(t *testing.T) {
	t.Helper()
	p.stop.Store(true)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, err := range p.errs {
		t.Fatal(err)
	}
}

// ackTimes lists the acknowledgement times of submissions from site, in
// order.
func (p *pacedTraffic) ackTimes(g *clustertest.Ledger, site string) []time.Time {
	sent := g.Sent()
	p.mu.Lock()
	defer p.mu.Unlock()
	var ts []time.Time
	for _, k := range p.order {
		if sent[k].From == site {
			ts = append(ts, p.acks[k])
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}

// ackedBetween lists the keys acknowledged in [from, to), in order.
func (p *pacedTraffic) ackedBetween(from, to time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keys []string
	for _, k := range p.order {
		if at := p.acks[k]; !at.Before(from) && at.Before(to) {
			keys = append(keys, k)
		}
	}
	return keys
}

// arrivalWatch notes when each message is first seen in its destination
// site's inbox: one long poll per node of the site (so that a node being
// restarted leaves the others watching), the earliest sighting counting.
// Its methods are safe for concurrent use.
type arrivalWatch struct {
	site string
	wg   sync.WaitGroup

	mu    sync.Mutex
	first map[string]time.Time // key -> first sighting
}

// watchArrivals starts watching site's inbox until ctx ends; Wait then
// waits for the pollers.
func watchArrivals(ctx context.Context, site string, clientFor func(node string) *client.Client) *arrivalWatch {
	w := &arrivalWatch{site: site, first: map[string]time.Time{}}
	for _, node := range daemon.LabNodes(site) {
		w.wg.Go(func() {
			var after uint64
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				in, err := clientFor(node).Inbox(rctx, after, 1000, time.Second)
				cancel()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				now := time.Now()
				w.mu.Lock()
				for _, m := range in.Messages {
					if _, ok := w.first[m.Key]; !ok {
						w.first[m.Key] = now
					}
				}
				w.mu.Unlock()
				after = in.Next
				time.Sleep(50 * time.Millisecond) // the granularity: fewer reads
			}
		})
	}
	return w
}

// Wait waits for the pollers (their context must have ended).
func (w *arrivalWatch) Wait() { w.wg.Wait() }

// times lists every first sighting, in order.
func (w *arrivalWatch) times() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ts []time.Time
	for _, at := range w.first {
		ts = append(ts, at)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}

// gap is an interval without arrivals.
type gap struct {
	From, To time.Time
}

func (g gap) Len() time.Duration { return g.To.Sub(g.From) }

// longestGap returns the longest interval without arrivals that overlaps
// [from, to]: between consecutive times of ts (sorted), or from the last
// arrival to to when none came after it, or from from to the first
// arrival when none came before it.
func longestGap(ts []time.Time, from, to time.Time) gap {
	var best gap
	consider := func(a, b time.Time) {
		if b.After(from) && a.Before(to) && b.Sub(a) > best.Len() {
			best = gap{a, b}
		}
	}
	if len(ts) == 0 || ts[0].After(from) {
		end := to
		if len(ts) > 0 {
			end = ts[0]
		}
		consider(from, end)
	}
	for i := 1; i < len(ts); i++ {
		consider(ts[i-1], ts[i])
	}
	if len(ts) > 0 && ts[len(ts)-1].Before(to) {
		consider(ts[len(ts)-1], to)
	}
	return best
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		ts           []float64
		from, to     float64
		wantA, wantB float64
	}{
		{ts: []float64{0, 1, 5, 6}, from: 0.5, to: 5.5, wantA: 1, wantB: 5},
		{ts: []float64{0, 9, 10}, from: 2, to: 3, wantA: 0, wantB: 9},         // one gap spans the window
		{ts: []float64{0, 4, 4.5, 20}, from: 5, to: 6, wantA: 4.5, wantB: 20}, // the gap after the window's last arrival
		{ts: []float64{0, 1}, from: 2, to: 7, wantA: 1, wantB: 7},             // nothing after: until the window's end
		{ts: []float64{8, 9}, from: 2, to: 10, wantA: 2, wantB: 8},            // nothing before: from the window's start
		{ts: nil, from: 2, to: 7, wantA: 2, wantB: 7},
		{ts: []float64{0, 1, 10, 11}, from: 1.5, to: 1.5, wantA: 1, wantB: 10},
	} {
		var ts []time.Time
		for _, s := range tc.ts {
			ts = append(ts, at(s))
		}
		g := longestGap(ts, at(tc.from), at(tc.to))
		if !g.From.Equal(at(tc.wantA)) || !g.To.Equal(at(tc.wantB)) {
			t.Errorf("longestGap(%v, %v, %v) = %v..%v, want %v..%v", tc.ts, tc.from, tc.to,
				g.From.Sub(t0).Seconds(), g.To.Sub(t0).Seconds(), tc.wantA, tc.wantB)
		}
	}
}
