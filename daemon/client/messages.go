package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"time"
)

// SubmitRequest is one message to submit. Zero values take the daemon's
// defaults: precedence routine, no key, no TTL, wait queued, timeout 30s.
type SubmitRequest struct {
	To         string        // destination: SITE or SITE/MAILBOX (required)
	From       string        // the mailbox it is sent from (default: "default")
	Type       string        // media type (default application/octet-stream)
	Precedence string        // flash | immediate | priority | routine
	Key        string        // idempotency key: resubmitting it returns the stored message
	TTL        time.Duration // expire if not delivered within TTL; 0 = never
	Timeout    time.Duration // how long the daemon waits for Wait; 0 = its default
	Wait       string        // queued | delivered | read: the state to wait for
	Drill      bool          // drill canary: never put into the destination's inbox (admin only)
	Payload    []byte
}

// Submit submits one message and returns its status. When Wait is set the
// daemon answers once the message reaches that state or its Timeout ends,
// whichever comes first; then WaitTimedOut is set and Message.State says
// the state reached. A returned Message means the message is stored.
// Existing is set when the key named a message already stored. Submit is
// safe to retry with the same Key after any error; without a Key, an error
// carrying an [APIError.ID] means the message may have been stored under
// that id.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (*Message, error) {
	q := url.Values{}
	q.Set("to", req.To)
	if req.From != "" {
		q.Set("from", req.From)
	}
	if req.Type != "" {
		q.Set("type", req.Type)
	}
	if req.Precedence != "" {
		q.Set("precedence", req.Precedence)
	}
	if req.Key != "" {
		q.Set("id", req.Key)
	}
	if req.TTL > 0 {
		q.Set("ttl", req.TTL.String())
	}
	if req.Wait != "" {
		q.Set("wait", req.Wait)
	}
	if req.Timeout > 0 {
		q.Set("timeout", req.Timeout.String())
	}
	if req.Drill {
		q.Set("drill", "true")
	}
	var m Message
	status, err := c.do(ctx, http.MethodPost, PathMessages, q, bytes.NewReader(req.Payload), "application/octet-stream", &m)
	if err != nil {
		return nil, err
	}
	if status == http.StatusOK { // 202 carries it in the body
		m.Existing = true
	}
	return &m, nil
}

// Get returns the status of the message with the given id (or idempotency
// key, if the daemon accepts keys there). An unknown id is an *APIError
// with CodeNotFound.
func (c *Client) Get(ctx context.Context, id string) (*Message, error) {
	var m Message
	if _, err := c.do(ctx, http.MethodGet, PathMessages+"/"+url.PathEscape(id), nil, nil, "", &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if _, err := c.do(ctx, http.MethodGet, PathStatus, nil, nil, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}
