package drill

import (
	"context"
	"errors"

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
