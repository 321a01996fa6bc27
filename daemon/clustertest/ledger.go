package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// Sent is one acknowledged submission.
type Sent struct {
	Key, ID, From, To, Precedence string
}

// Ledger records acknowledged submissions and checks what arrived. It is
// safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex
	sent map[string]Sent // by key
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{sent: map[string]Sent{}} }

// Add records s (a later Add with the same key replaces it).
func (g *Ledger) Add(s Sent) {
	g.mu.Lock()
	g.sent[s.Key] = s
	g.mu.Unlock()
}

// Sent returns a copy of the recorded submissions by key.
func (g *Ledger) Sent() map[string]Sent {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]Sent, len(g.sent))
	for k, s := range g.sent {
		out[k] = s
	}
	return out
}

// AckedTo counts the acknowledged submissions to site.
func (g *Ledger) AckedTo(site string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.sent {
		if s.To == site {
			n++
		}
	}
	return n
}

// CheckArrivals verifies exactly-once, in-order delivery: every
// acknowledged submission to site appears exactly once in msgs (the site's
// inbox in position order), and within each channel sequence numbers
// increase by one from 1. It reports every violation with t.Errorf.
func (g *Ledger) CheckArrivals(t testing.TB, site string, msgs []client.InboxMessage) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]int{}
	lastSeq := map[string]uint64{}
	for _, m := range msgs {
		seen[m.Key]++
		ch := m.From + "/" + m.Precedence
		if m.Seq != lastSeq[ch]+1 {
			t.Errorf("site %s: channel %s: seq %d after %d (out of order or gap)", site, ch, m.Seq, lastSeq[ch])
		}
		lastSeq[ch] = m.Seq
		if s, ok := g.sent[m.Key]; ok && s.ID != m.ID {
			t.Errorf("site %s: key %s arrived as id %s, submitted as %s", site, m.Key, m.ID, s.ID)
		}
	}
	want := 0
	for k, s := range g.sent {
		if s.To != site {
			continue
		}
		want++
		switch seen[k] {
		case 1:
		case 0:
			t.Errorf("site %s: %s (id %s from %s) was acknowledged but never arrived", site, k, s.ID, s.From)
		default:
			t.Errorf("site %s: %s arrived %d times", site, k, seen[k])
		}
	}
	for k, c := range seen {
		if _, ok := g.sent[k]; !ok {
			t.Errorf("site %s: %s arrived %d times but was never acknowledged", site, k, c)
		}
	}
	t.Logf("site %s: %d acknowledged, %d arrived", site, want, len(msgs))
}

// SubmitRetrying submits until acknowledged, retrying every 100ms with
// the same key as a careful client does (a retry must never duplicate),
// until ctx ends.
func SubmitRetrying(ctx context.Context, c *client.Client, req client.SubmitRequest) (*client.Message, error) {
	var last error
	for ctx.Err() == nil {
		m, err := c.Submit(ctx, req)
		if err == nil {
			return m, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("submit %s: %w (last error: %v)", req.Key, ctx.Err(), last)
}

// DrainInbox reads a site's inbox through c until want unread messages
// are there or deadline passes, then waits 500ms more for anything extra
// (a duplicate), and returns them in position order.
func DrainInbox(t testing.TB, c *client.Client, want int, deadline time.Duration) []client.InboxMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var out []client.InboxMessage
	var after uint64
	for len(out) < want && ctx.Err() == nil {
		in, err := c.Inbox(ctx, after, 1000, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Logf("inbox: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		out = append(out, in.Messages...)
		after = in.Next
	}
	// Anything extra (a duplicate) shows up within a short grace period.
	if in, err := c.Inbox(context.Background(), after, 1000, 500*time.Millisecond); err == nil {
		out = append(out, in.Messages...)
	}
	return out
}

// AckAll acknowledges (marks read) msgs through c, node's client, at most
// 500 ids a call, and fails t naming node on the first error.
func AckAll(ctx context.Context, t testing.TB, c *client.Client, node string, msgs []client.InboxMessage) {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	for len(ids) > 0 {
		k := min(len(ids), 500)
		if _, err := c.Ack(ctx, ids[:k]); err != nil {
			t.Fatalf("ack at %s: %v", node, err)
		}
		ids = ids[k:]
	}
}

// WaitRead waits until every recorded submission is "read" at its origin,
// asked through clientFor(origin site), polling every 50ms until ctx
// ends. A read message must have been delivered no later than it was
// read. A Get error fails t unless retryable(err) holds (a nil retryable
// holds for none).
func (g *Ledger) WaitRead(ctx context.Context, t testing.TB, clientFor func(site string) *client.Client, retryable func(error) bool) {
	t.Helper()
	for _, s := range g.Sent() {
		c := clientFor(s.From)
		for {
			m, err := c.Get(ctx, s.ID)
			if err != nil && (retryable == nil || !retryable(err)) {
				t.Fatalf("get %s: %v", s.ID, err)
			}
			if err == nil && m.State == "read" {
				if m.DeliveredAt == nil || m.ReadAt == nil || m.ReadAt.Before(*m.DeliveredAt) {
					t.Errorf("%s: read without consistent timestamps: %+v", s.Key, m)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s (%s, %s->%s) is not read at %s: %+v, last error %v", s.Key, s.ID, s.From, s.To, s.From, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
