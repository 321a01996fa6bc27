package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// Daemon is what a bench needs from a node: the few calls of its socket
// API. The submitting side is asked for Status and Submit, the receiving
// side for Status, Inbox and Ack. *client.Client implements it.
type Daemon interface {
	Status(ctx context.Context) (*client.Status, error)
	Submit(ctx context.Context, req client.SubmitRequest) (*client.Message, error)
	Inbox(ctx context.Context, after uint64, max int, wait time.Duration) (*client.Inbox, error)
	Ack(ctx context.Context, ids []string) (*client.AckReply, error)
}

var _ Daemon = (*client.Client)(nil)

// ErrInterrupted is matched by Run's error when ctx ended the bench
// before its messages had arrived or the timeout had passed: messages
// counted as lost may still arrive.
var ErrInterrupted = errors.New("interrupted")

// WrongSiteError is Run's error when the receiving daemon is not a node
// of the destination site: its inbox would never see the messages.
type WrongSiteError struct {
	Node, Site string // the receiving daemon's node and site
	To         string // Options.To
}

func (e *WrongSiteError) Error() string {
	return fmt.Sprintf("bench: the receiving daemon is node %s of site %q, not of --to site %q", e.Node, e.Site, e.To)
}

// nextDelay is the retry delay after d: 250ms first, then doubling up to
// 5s.
func nextDelay(d time.Duration) time.Duration {
	if d == 0 {
		return 250 * time.Millisecond
	}
	return min(2*d, 5*time.Second)
}
