package drill

import (
	"context"
	"errors"
	"fmt"

	"github.com/hotline-link/hotline/daemon/client"
)

// Cluster is what a drill needs from the site: the socket API of the
// node it runs through. Node arguments name a node of that node's site,
// "" meaning the node itself. *client.Client implements it.
type Cluster interface {
	Status(ctx context.Context) (*client.Status, error)
	Paths(ctx context.Context, node string) (*client.PathsReply, error)
	PathDown(ctx context.Context, node, path, mode string) (*client.PathAdmin, error)
	PathUp(ctx context.Context, node, path string) (*client.PathAdmin, error)
	TransferLeader(ctx context.Context, site, to string) (*client.LeaderTransfer, error)
	Arrivals(ctx context.Context, site, prec string, after uint64, max int) (*client.ArrivalsReply, error)
	Submit(ctx context.Context, req client.SubmitRequest) (*client.Message, error)
}

var _ Cluster = (*client.Client)(nil)

// ErrInterrupted is matched by Run's error when ctx ended the drill
// before its drain did: canaries counted as lost may still have arrived.
var ErrInterrupted = errors.New("interrupted")

// refusedError is an admin call the daemon refused for the caller's
// credentials. It reads as hotlinectl's other admin refusals do
// ("OP: permission denied by hotlined: who is allowed") and unwraps to the
// daemon's *client.APIError.
type refusedError struct {
	op string
	ae *client.APIError
}

func (r *refusedError) Error() string {
	return r.op + ": permission denied by hotlined: " + r.ae.Message
}
func (r *refusedError) Unwrap() error { return r.ae }

// opError wraps the error of an admin call with the operation, saying a
// refusal for lack of rights in plain words.
func opError(op string, err error) error {
	if ae, ok := errors.AsType[*client.APIError](err); ok && ae.Code == client.CodeForbidden {
		return &refusedError{op: op, ae: ae}
	}
	return fmt.Errorf("%s: %w", op, err)
}
