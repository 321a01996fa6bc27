package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Inbox returns up to max unread messages with positions after `after`
// (0 = from the start), oldest first. When none is unread it waits up to
// wait for one (0 = answer at once). max <= 0 takes the daemon's default.
// Continue with after = the returned Next.
func (c *Client) Inbox(ctx context.Context, after uint64, max int, wait time.Duration) (*Inbox, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatUint(after, 10))
	if max > 0 {
		q.Set("max", strconv.Itoa(max))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var in Inbox
	if _, err := c.do(ctx, http.MethodGet, PathInbox, q, nil, "", &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// Ack marks the given inbox messages read, which sends their read receipts.
// Unknown ids reject the whole call (CodeNotFound) and nothing is marked.
func (c *Client) Ack(ctx context.Context, ids []string) (*AckReply, error) {
	if ids == nil {
		ids = []string{}
	}
	body, err := jsonBody(AckRequest{IDs: ids})
	if err != nil {
		return nil, fmt.Errorf("client: ack: %w", err)
	}
	var r AckReply
	if _, err := c.do(ctx, http.MethodPost, PathAck, nil, body, "application/json", &r); err != nil {
		return nil, err
	}
	return &r, nil
}
