package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// committer is this node's commit path into the site's Raft log. It
// proposes commands (propose.go): applied here while this node leads,
// relayed to the leader over the site's LAN otherwise (callPropose), and
// retried through leader changes; it groups concurrent submissions into
// shared entries (group commit, submit.go); and it makes reads consistent
// with the site's read index (readindex.go). It serves the leader's side
// of both calls (servePropose, serveReadIndex).
//
// Errors keep their identity across the relay: a refusal from the leader
// arrives as a *transport.CallError wrapping the same sentinel
// (consensus.ErrNotLeader, ErrStorageFull, ErrStarting, ...), so callers
// branch with errors.Is, and tell the leader's errors from this node's own
// with errors.As.
//
// All methods are safe for concurrent use. A committer lives as long as
// its node: stop (the node's context) ends retries and waits.
type committer struct {
	node    string        // this node's name
	timeout time.Duration // submit_timeout: a commit's or a read round's bound
	raft    *consensus.Node
	store   *queue.Store
	link    *transport.Link // relays to the leader
	log     *slog.Logger
	stop    context.Context // ends when the node stops

	// check refuses a command relayed by another node of the site that no
	// node of the site proposes (Node.checkRelayed); from is the
	// relaying node.
	check func(from pki.Identity, cmd *queue.Command) error

	subs  *submitter // group commit of submissions
	reads readIndex  // coalesced read-index rounds
}

// committerDeps is what a committer is built from.
type committerDeps struct {
	node, site string
	timeout    time.Duration
	raft       *consensus.Node
	store      *queue.Store
	link       *transport.Link
	log        *slog.Logger
	stop       context.Context
	check      func(pki.Identity, *queue.Command) error
	submitted  func(n int) // counts committed submissions (metrics)
}

// newCommitter starts the commit path; close stops its group commit.
func newCommitter(d committerDeps) *committer {
	c := &committer{node: d.node, timeout: d.timeout, raft: d.raft, store: d.store, link: d.link,
		log: d.log, stop: d.stop, check: d.check}
	c.subs = newSubmitter(submitterDeps{site: d.site, timeout: d.timeout, stop: d.stop, propose: c.propose, submitted: d.submitted})
	return c
}

// close stops group commit: submissions waiting for an entry fail with
// errShuttingDown. Proposals in progress end with the node's context.
func (c *committer) close() { c.subs.close() }

// submit commits one submission, grouped with concurrent ones.
func (c *committer) submit(ctx context.Context, item queue.SubmitItem) (queue.SubmitResult, error) {
	return c.subs.submit(ctx, item)
}
