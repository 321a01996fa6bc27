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
// Continue with after = the returned Next. The reply holds at most the
// daemon's default max_bytes (4 MiB) of messages; see [Client.ReadInbox].
func (c *Client) Inbox(ctx context.Context, after uint64, max int, wait time.Duration) (*Inbox, error) {
	return c.ReadInbox(ctx, InboxRequest{After: after, Max: max, Wait: wait})
}

// InboxRequest is one inbox read. Zero values take the daemon's defaults.
type InboxRequest struct {
	After    uint64        // return messages with positions after this
	Max      int           // at most this many messages (1-1000, default 100)
	MaxBytes int64         // at most this many payload, id and key bytes (default 4 MiB, at most 16 MiB); the first message always
	Wait     time.Duration // long-poll this long when none is unread
	Mailbox  string        // only this mailbox ("": every mailbox the caller may read)
}

// ReadInbox is Inbox with every parameter.
func (c *Client) ReadInbox(ctx context.Context, req InboxRequest) (*Inbox, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatUint(req.After, 10))
	if req.Mailbox != "" {
		q.Set("mailbox", req.Mailbox)
	}
	if req.Max > 0 {
		q.Set("max", strconv.Itoa(req.Max))
	}
	if req.MaxBytes > 0 {
		q.Set("max_bytes", strconv.FormatInt(req.MaxBytes, 10))
	}
	if req.Wait > 0 {
		q.Set("wait", req.Wait.String())
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
