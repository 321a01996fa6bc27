package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// The admin calls need root or the daemon's admin_group (CodeForbidden
// otherwise). node names a node of the daemon's own site; "" means the
// node serving the socket.

// ForbiddenError is an admin call the daemon refused for the caller's
// credentials (CodeForbidden); the daemon's message says who is allowed.
// It unwraps to the daemon's *APIError.
type ForbiddenError struct {
	Op  string    // what was asked, as the caller names it ("paths")
	Err *APIError // the daemon's refusal
}

func (f *ForbiddenError) Error() string {
	return fmt.Sprintf("%s: permission denied by hotlined: %s", f.Op, f.Err.Message)
}

func (f *ForbiddenError) Unwrap() error { return f.Err }

// AdminError wraps the error of an admin call with the operation op; a
// refusal for lack of rights becomes a *ForbiddenError, which says so in
// plain words and keeps the daemon's explanation.
func AdminError(op string, err error) error {
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Code == CodeForbidden {
		return &ForbiddenError{Op: op, Err: ae}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Paths returns every (peer node, path) as seen by node.
func (c *Client) Paths(ctx context.Context, node string) (*PathsReply, error) {
	var r PathsReply
	if _, err := c.do(ctx, http.MethodGet, PathAdminPaths, nodeQuery(node), nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PathDown administratively disables path on node. mode is ModeClose
// (the default when "") or ModeDrop (a silent cut).
func (c *Client) PathDown(ctx context.Context, node, path, mode string) (*PathAdmin, error) {
	q := nodeQuery(node)
	if mode != "" {
		q.Set("mode", mode)
	}
	var r PathAdmin
	if _, err := c.do(ctx, http.MethodPost, PathAdminPath+url.PathEscape(path)+"/down", q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PathUp enables path on node again.
func (c *Client) PathUp(ctx context.Context, node, path string) (*PathAdmin, error) {
	var r PathAdmin
	if _, err := c.do(ctx, http.MethodPost, PathAdminPath+url.PathEscape(path)+"/up", nodeQuery(node), nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// TransferLeader moves the leadership of site ("" = the daemon's own) to
// node to ("" = the node Raft picks). It returns once the transfer is done.
func (c *Client) TransferLeader(ctx context.Context, site, to string) (*LeaderTransfer, error) {
	q := url.Values{}
	if site != "" {
		q.Set("site", site)
	}
	if to != "" {
		q.Set("to", to)
	}
	var r LeaderTransfer
	if _, err := c.do(ctx, http.MethodPost, PathAdminLeader, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Arrivals returns up to max drill canaries that this site sent to site
// with precedence prec and sequence numbers after `after`, as committed
// at site. max 0 returns no canaries, only the channel's Last.
func (c *Client) Arrivals(ctx context.Context, site, prec string, after uint64, max int) (*ArrivalsReply, error) {
	q := url.Values{}
	q.Set("site", site)
	if prec != "" {
		q.Set("precedence", prec)
	}
	q.Set("after", strconv.FormatUint(after, 10))
	q.Set("max", strconv.Itoa(max))
	var r ArrivalsReply
	if _, err := c.do(ctx, http.MethodGet, PathAdminArrivals, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func nodeQuery(node string) url.Values {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	return q
}
