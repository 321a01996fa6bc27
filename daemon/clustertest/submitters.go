package clustertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// Submitters are paced submitters that run until stopped, for tests that
// break a lab while traffic flows: each submits from one node to another
// site, precedences in rotation, one message every 20ms, each retried
// with its key until acknowledged (SubmitRetrying) and then recorded in
// the Ledger. Its methods are safe for concurrent use.
type Submitters struct {
	// Acked counts the acknowledged submissions so far.
	Acked atomic.Int64

	ctx    context.Context
	prefix string
	g      *Ledger
	stop   atomic.Bool
	wg     sync.WaitGroup

	mu   sync.Mutex
	errs []error // the first error of each submitter that gave up
}

// NewSubmitters returns submitters whose keys are "<prefix>-<node>-<i>";
// a submission retried until ctx ends makes its submitter give up.
func NewSubmitters(ctx context.Context, prefix string, g *Ledger) *Submitters {
	return &Submitters{ctx: ctx, prefix: prefix, g: g}
}

// Go starts a submitter that sends node's messages from site from to site
// to through c (which need not be node's own socket), until Stop, or
// count messages when count > 0.
func (s *Submitters) Go(from, node, to string, c *client.Client, count int) {
	s.wg.Go(func() {
		for i := 0; count > 0 && i < count || count == 0 && !s.stop.Load(); i++ {
			p := queue.Precedences[i%len(queue.Precedences)]
			key := fmt.Sprintf("%s-%s-%d", s.prefix, node, i)
			m, err := SubmitRetrying(s.ctx, c, client.SubmitRequest{To: to, Precedence: p.String(), Key: key, Payload: []byte(key)})
			if err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
				return
			}
			s.g.Add(Sent{Key: key, ID: m.ID, From: from, To: to, Precedence: p.String()})
			s.Acked.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Stop ends every submitter after its submission under way, waits for
// them, and fails t on the first error.
func (s *Submitters) Stop(t testing.TB) {
	t.Helper()
	s.stop.Store(true)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range s.errs {
		t.Fatal(err)
	}
}
