package linktest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hotline-link/hotline/internal/ctxsleep"
)

// Errors a Link's SendBatch returns for the faults it simulates, checked
// with errors.Is.
var (
	// ErrDropped: the batch was lost on the way (Faults.Drop, or the
	// sender or receiver is cut off); the far side never saw it.
	ErrDropped = errors.New("linktest: batch dropped")
	// ErrAckDropped: the far side handled the batch but its answer was
	// lost (Faults.DropAck).
	ErrAckDropped = errors.New("linktest: ack dropped")
	// ErrNoSite: no handler is registered for the batch's site.
	ErrNoSite = errors.New("linktest: no such site")
)

// Handler is a site's receiving end: it handles a batch from site from
// and answers it. It is called concurrently, may see the same batch twice
// (Faults.Duplicate) and must not modify it.
type Handler[B, A any] func(ctx context.Context, from string, b *B) (*A, error)

// Faults say how a Net mistreats batches. Each probability is drawn per
// batch from the Net's seeded source.
type Faults struct {
	Drop      float64 // the batch is lost: SendBatch fails with ErrDropped
	DropAck   float64 // the batch is handled, its answer lost: ErrAckDropped
	Duplicate float64 // the far side also gets the batch a second time, up to Delay later
	Reorder   float64 // the batch is held back an extra Delay (1 ms if 0) so later ones overtake it
	// Delay: each batch takes a random time in [0, Delay) to arrive.
	Delay time.Duration
}

// Stats count what a Net did to batches.
type Stats struct {
	Sent, Delivered, Dropped, AcksDropped, Duplicated, Reordered int
}

// Net is an in-memory network joining sites, for tests of code that sends
// batches between sites: each site registers a Handler, each sender gets a
// Link, and the Net delivers, drops, delays, reorders and duplicates
// batches as its Faults say. Its methods are safe for concurrent use.
//
// It is generic over the batch and ack types, B and A, because transport's
// own tests import linktest, so linktest cannot import transport;
// Net[transport.Batch, transport.Ack]'s Link has transport.Link's
// SendBatch and SetPreferred, so it satisfies interfaces that consumers
// (daemon/forward) declare over them.
//
// The faults are drawn from a seeded source, so one goroutine sending
// one batch at a time sees the same faults on every run; with concurrent
// senders the draws go to whichever batch comes first.
type Net[B, A any] struct {
	route func(*B) string // the site a batch is for

	ctx    context.Context // ends at Close: late duplicates give up
	cancel context.CancelFunc
	wg     sync.WaitGroup // late duplicates

	mu       sync.Mutex
	rng      *rand.Rand
	faults   Faults
	handlers map[string]Handler[B, A]
	cut      map[string]bool
	stats    Stats
	closed   bool // no more late duplicates
}

// NewNet returns a Net whose faults are drawn from seed; route names the
// site a batch is for (for transport.Batch: its To). Call Close when done.
func NewNet[B, A any](seed uint64, route func(*B) string) *Net[B, A] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Net[B, A]{route: route, ctx: ctx, cancel: cancel,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), handlers: map[string]Handler[B, A]{}, cut: map[string]bool{}}
}

// Handle makes h the receiving end of site.
func (n *Net[B, A]) Handle(site string, h Handler[B, A]) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[site] = h
}

// SetFaults changes how batches sent from now on are treated.
func (n *Net[B, A]) SetFaults(f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
}

// Cut cuts site off (every batch from or to it is dropped) or, with cut
// false, joins it again.
func (n *Net[B, A]) Cut(site string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[site] = cut
}

// Stats returns what the Net has done so far.
func (n *Net[B, A]) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops late duplicates and waits for them. Sends after Close still
// work (without late duplicates).
func (n *Net[B, A]) Close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
}

// Link returns the sending end of site from.
func (n *Net[B, A]) Link(from string) *Link[B, A] {
	return &Link[B, A]{net: n, from: from, preferred: map[string]string{}}
}

// fate is what happens to one batch, drawn under mu.
type fate[B, A any] struct {
	h                           Handler[B, A]
	drop, dropAck, reorder, dup bool
	delay, dupDelay             time.Duration
}

func (n *Net[B, A]) draw(from, to string) (f fate[B, A]) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fs := n.faults
	chance := func(p float64) bool { return p > 0 && n.rng.Float64() < p }
	span := func(d time.Duration) time.Duration {
		if d <= 0 {
			return 0
		}
		return time.Duration(n.rng.Int64N(int64(d)))
	}
	f.h = n.handlers[to]
	f.drop = chance(fs.Drop) || n.cut[from] || n.cut[to]
	f.dropAck = chance(fs.DropAck)
	f.dup = chance(fs.Duplicate)
	f.reorder = chance(fs.Reorder)
	f.delay, f.dupDelay = span(fs.Delay), span(fs.Delay)
	if f.reorder {
		f.delay += max(fs.Delay, time.Millisecond)
	}
	n.stats.Sent++
	return f
}

func (n *Net[B, A]) count(c func(*Stats)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c(&n.stats)
}

// duplicate delivers b a second time, up to Delay later, unless the Net
// is closed.
func (n *Net[B, A]) duplicate(f fate[B, A], from string, b *B) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.stats.Duplicated++
	n.wg.Go(func() {
		if ctxsleep.Sleep(n.ctx, f.dupDelay) == nil {
			_, _ = f.h(n.ctx, from, b)
		}
	})
}

// Link is one site's sending end on a Net. It remembers the preferred
// node per site (SetPreferred) for tests to check; the Net ignores it.
type Link[B, A any] struct {
	net  *Net[B, A]
	from string

	mu        sync.Mutex
	preferred map[string]string
}

// SendBatch delivers b to its site's handler and returns the answer,
// unless the Net's faults lose one of them. It returns when ctx ends at
// the latest.
func (l *Link[B, A]) SendBatch(ctx context.Context, b *B) (*A, error) {
	n := l.net
	to := n.route(b)
	f := n.draw(l.from, to)
	if f.h == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSite, to)
	}
	if f.reorder {
		n.count(func(s *Stats) { s.Reordered++ })
	}
	if err := ctxsleep.Sleep(ctx, f.delay); err != nil {
		return nil, err
	}
	if f.drop {
		n.count(func(s *Stats) { s.Dropped++ })
		return nil, fmt.Errorf("%w: %s to %s", ErrDropped, l.from, to)
	}
	if f.dup {
		n.duplicate(f, l.from, b)
	}
	ack, err := f.h(ctx, l.from, b)
	n.count(func(s *Stats) { s.Delivered++ })
	if err != nil {
		return nil, err
	}
	if f.dropAck {
		n.count(func(s *Stats) { s.AcksDropped++ })
		return nil, fmt.Errorf("%w: %s to %s", ErrAckDropped, l.from, to)
	}
	return ack, nil
}

// SetPreferred records node as the one to try first for site.
func (l *Link[B, A]) SetPreferred(site, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.preferred[site] = node
}

// Preferred is the node last set preferred for site.
func (l *Link[B, A]) Preferred(site string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.preferred[site]
}
