package forward

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// Link sends batches to other sites; *transport.Link is one, and so is
// linktest's in-memory Net.
type Link interface {
	// SendBatch delivers b to a node of site b.To and returns its ack.
	// It returns when ctx ends at the latest.
	SendBatch(ctx context.Context, b *transport.Batch) (*transport.Ack, error)
	// SetPreferred makes node the first one tried for site ("" for none).
	SetPreferred(site, node string)
}

// Log commits commands on the site's replicated log and returns their
// result; retried commands must be safe (every queue command is
// idempotent).
type Log interface {
	Propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error)
}

// ProposeFunc adapts a function to Log.
type ProposeFunc func(ctx context.Context, cmd *queue.Command) (*queue.Result, error)

// Propose calls p.
func (p ProposeFunc) Propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	return p(ctx, cmd)
}

// State is what forwarding reads of the site's committed state; a
// *queue.Store is one.
type State interface {
	// Changed is closed at the next change of the state.
	Changed() <-chan struct{}
	Outbound() []queue.OutChannel
	Resend(dest string, p queue.Precedence, after uint64, maxMsgs, maxBytes int) ([]queue.Message, error)
	OutFenced(dest string, p queue.Precedence) bool
	ReceiptQueues() []queue.ReceiptQueue
	PendingReceipts(origin string, after uint64, max int) ([]queue.Receipt, error)
	ReceiptsFenced(origin string) bool
}

var (
	_ Link  = (*transport.Link)(nil)
	_ State = (*queue.Store)(nil)
)

// Hooks are told what forwarding did, for metrics. Nil fields are skipped.
type Hooks struct {
	// SendFailed: a round of batches to dest failed (it is retried).
	SendFailed func(dest string)
	// Delivered: n more outbound messages were recorded acknowledged.
	Delivered func(n uint64)
	// Untrusted: a signature on the link with site did not hold (err
	// wraps the Notary's errors; Reason names why): site's delivery proof
	// in an ack did not hold here (ack true), or site refused the
	// signature of our batch (ack false). The batch is sent again
	// either way: a key mismatch while keys rotate heals.
	Untrusted func(site string, ack bool, err error)
}

// Config is one site's forwarding: its tuning and what it works with.
// Run and the drivers only read it.
type Config struct {
	Site   string   // this site: the origin of its batches
	Remote []string // the other sites

	Window        int // batches in flight per channel
	BatchMessages int // most messages per batch
	BatchBytes    int // most payload bytes per batch
	RetryMin      time.Duration
	RetryMax      time.Duration
	SendTimeout   time.Duration // one batch's round trip
	SubmitTimeout time.Duration // one proposal

	Link  Link
	Log   Log
	State State
	// Notary signs each batch sent and checks each delivery proof
	// received; required.
	Notary *Notary
	// Codes names the errors of refusals (transport.Ack.Code): the
	// receiving site's table, which serves its calls too. Nil: the
	// transport's own.
	Codes *transport.Codes
	// Retryable reports whether a refusal (a *transport.CallError built
	// by Ack.Err from Codes, wrapping the sentinel of its code) says the
	// refusing node was starting or stopping; it is then no longer
	// preferred. It decides with errors.Is; only for a refusal without a
	// code (a receiver of an earlier version) may it read the text.
	// Nil: never.
	Retryable func(refusal error) bool
	// Background bounds the proposals that record acks: the node's life,
	// not the leadership's, so an ack learned just before leadership ended
	// is still recorded (through the new leader). Nil: context.Background.
	Background context.Context
	Logger     *slog.Logger // nil: slog.Default
	Hooks      Hooks
}

// Run forwards until ctx ends (the leadership does), then returns once
// everything it started has stopped: a Forwarder per other site and
// precedence (so a higher precedence never waits behind a lower one) and a
// ReceiptSender per other site.
func Run(ctx context.Context, c *Config) {
	var wg sync.WaitGroup
	for _, site := range c.Remote {
		for _, p := range queue.Precedences {
			f := NewForwarder(c, site, p)
			wg.Go(func() { f.Run(ctx) })
		}
		r := NewReceiptSender(c, site)
		wg.Go(func() { r.Run(ctx) })
	}
	wg.Wait()
}

// refused returns nil if ack accepts a batch to site, else the refusal
// as a typed error (ack.Err with c.Codes), after pointing the next send
// to site at the leader the refusing node named; a node that was starting
// or stopping (c.Retryable) and named none is no longer preferred. Either
// way the caller retries: every send is safe to repeat.
func (c *Config) refused(site string, ack *transport.Ack) error {
	err := ack.Err(c.Codes)
	switch {
	case err == nil:
	case ack.Leader != "":
		c.Link.SetPreferred(site, ack.Leader)
	case c.Retryable != nil && c.Retryable(err):
		c.Link.SetPreferred(site, "")
	}
	return err
}

// untrusted tells Hooks.Untrusted of a signature on the link with site
// that did not hold, if err is one (Reason).
func (c *Config) untrusted(site string, ack bool, err error) {
	if h := c.Hooks.Untrusted; h != nil && Reason(err) != "" {
		h(site, ack, err)
	}
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

func (c *Config) background() context.Context {
	if c.Background == nil {
		return context.Background()
	}
	return c.Background
}
