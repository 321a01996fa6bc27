package daemon

import (
	"context"
	"fmt"
	"strconv"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// The calls a node serves over the link, by operation. Site-internal ones
// come from the other nodes of this site over the LAN path, inter-site ones
// from the nodes of other sites; the link's routing table (calls) refuses
// a call from the wrong side before any handler runs.
const (
	// Site-internal.
	callPropose   = "propose"   // a follower's command for the leader: body a queue.Command, reply an applied (commit)
	callReadIndex = "readindex" // the leader's read index, in decimal (readindex.go)
	callBarrier   = "barrier"   // commit a no-op (link tests)
	callUpPaths   = "up-paths"  // how many paths to other sites are up here
	callReach     = "reach"     // "SITES PATHS": other sites with a path up here, paths up

	// Site-internal: admin operations relayed to another node of the
	// site, each a JSON adminOp answered by an adminResult (admin.go).
	callAdminPaths    = "admin.paths"    // pathsRequest
	callAdminPath     = "admin.path"     // pathRequest
	callAdminTransfer = "admin.transfer" // transferRequest
	callAdminArrivals = "admin.arrivals" // arrivalsRequest
	callAdminRaft     = "admin.raft"     // raftRequest
	callAdminMembers  = "admin.members"  // membersRequest
	callAdminMember   = "admin.member"   // memberRequest

	// Inter-site.
	callLinkTest      = "linktest"       // prove this site can commit
	callDrillArrivals = "drill.arrivals" // their drill canaries as committed here
	callDrillTransfer = "drill.transfer" // move our leadership (allow_remote_drills)
)

// ErrUnsealable: an inbound payload is sealed to a KEM key this site does
// not hold (daemon/seal.go). The batch is refused (it wraps
// queue.ErrInvalid) with its own code, so the origin does not take it
// for a refusal of its signature.
var ErrUnsealable = fmt.Errorf("%w: payload sealed to a key this site does not hold", queue.ErrInvalid)

// callCodes are the errors that keep their identity across a call or a
// batch: the serving node sends the code of its error (a call's reply,
// or a batch's refusal: handleBatch), and the caller rebuilds an error
// wrapping the same sentinel (transport.Codes.Err, transport.Ack.Err: the
// forwarder's), so that errors.Is works after a relay. The first sentinel
// an error wraps gives its code.
var callCodes = func() *transport.Codes {
	c := transport.NewCodes()
	for _, e := range []struct {
		code string
		err  error
	}{
		{"starting", ErrStarting},
		{"stopping", ErrStopping},
		{"shutting_down", errShuttingDown},
		{"not_leader", consensus.ErrNotLeader},
		{"storage_full", consensus.ErrStorageFull},
		{"raft_no_quorum", consensus.ErrNoQuorum},
		{"raft_closed", consensus.ErrClosed},
		{"no_quorum", ErrNoQuorum},
		{"read_index", errReadIndex},
		{"unsealable", ErrUnsealable},
		// A signature on the link that does not hold (forward.Notary):
		// before "invalid", which a leader's refusal of a relayed
		// command wraps too, so that the relaying node (and the site
		// that sent it the batch) learns why.
		{"no_proof", forward.ErrNoProof},
		{"proof_mismatch", forward.ErrMismatch},
		{"unknown_key", trust.ErrUnknownKey},
		{"bad_signature", trust.ErrBadSignature},
		{"trust_malformed", trust.ErrMalformed},
		{"invalid", queue.ErrInvalid},
		{"bad_relay", errBadRelay},
		{"transfer_conflict", errTransferConflict},
		{"audit_fork", errAuditFork},
		{"bad_checkpoint", errBadCheckpoint},
		{"retry_later", errRetryLater},
		{"timeout", context.DeadlineExceeded},
		{"cancelled", context.Canceled},
	} {
		c.Add(e.code, e.err)
	}
	return c
}()

// calls is this node's routing table of calls. Every handler is admitted
// only while the node runs (lifecycle.enter): a node that is starting or
// stopping answers with ErrStarting or ErrStopping, which its callers
// recognise as retryable. The table may be built before the node's parts
// exist (Open does); handlers reach them only once the node runs.
func (n *Node) calls() *transport.Routes {
	rt := transport.NewRoutes(callCodes, n.otherLeader)
	handle := func(op string, scope transport.Scope, h transport.CallHandler) {
		rt.Handle(op, scope, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
			if err := n.life.enter(); err != nil {
				return nil, fmt.Errorf("%s: %w", n.cfg.Node, err)
			}
			defer n.life.exit()
			return h(ctx, from, body)
		})
	}
	site := func(op string, h transport.CallHandler) { handle(op, transport.SiteInternal, h) }
	other := func(op string, h transport.CallHandler) { handle(op, transport.InterSite, h) }

	site(callPropose, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
		return n.commit.servePropose(ctx, from, body)
	})
	site(callReadIndex, func(ctx context.Context, _ pki.Identity, _ []byte) ([]byte, error) {
		return n.commit.serveReadIndex(ctx)
	})
	site(callBarrier, func(ctx context.Context, _ pki.Identity, _ []byte) ([]byte, error) {
		return nil, n.linkHealth.barrier(ctx)
	})
	site(callUpPaths, func(context.Context, pki.Identity, []byte) ([]byte, error) {
		return strconv.AppendInt(nil, int64(n.linkHealth.upPaths()), 10), nil
	})
	site(callReach, func(context.Context, pki.Identity, []byte) ([]byte, error) {
		sites, paths := n.linkHealth.reach()
		return fmt.Appendf(nil, "%d %d", sites, paths), nil
	})
	for op := range adminOps {
		site(op, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
			return n.admin.serve(ctx, from, op, body)
		})
	}

	other(callLinkTest, func(ctx context.Context, _ pki.Identity, _ []byte) ([]byte, error) {
		return n.linkHealth.serveLinkTest(ctx) // an error keeps its sentinel (code)
	})
	other(callDrillArrivals, func(_ context.Context, from pki.Identity, body []byte) ([]byte, error) {
		return n.admin.serveArrivals(from.Site, body)
	})
	other(callDrillTransfer, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
		out, err := n.admin.serveDrillTransfer(ctx, from, body)
		n.auditRecord(ctx, "leader_transfer", fmt.Sprintf("another site's drill: to %q: %s", body, outcome(err)), peerActor(from))
		return out, err
	})
	other(callAuditCheckpoint, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
		return n.audit.serveOffer(ctx, from, body) // audit_exchange.go
	})
	other(callMailboxes, func(context.Context, pki.Identity, []byte) ([]byte, error) {
		return serveMailboxes(n.cfg) // mailbox_exchange.go
	})
	return rt
}
