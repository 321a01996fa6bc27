package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Paths of the mailbox endpoints.
const (
	// PathHeld lists the messages held for two-person release (GET
	// ?mailbox=NAME); POST PathMessages/{id}/release releases one.
	PathHeld = "/v1/held"
	// PathReleaseSuffix follows PathMessages/{id} to release a held
	// message.
	PathReleaseSuffix = "/release"
)

// MailboxStatus is one mailbox of this site in the status: its unread
// messages and how many of them are past their read objective, by
// precedence (keys flash, immediate, priority, routine), and its read
// objectives.
type MailboxStatus struct {
	Name       string            `json:"name"`
	Configured bool              `json:"configured"` // false: not in this node's config (messages wait for it; only root reads them)
	Unread     int               `json:"unread"`
	Overdue    map[string]int    `json:"overdue,omitempty"`
	Objectives map[string]string `json:"objectives,omitempty"` // precedence -> Go duration
	Held       int               `json:"held,omitempty"`       // messages from it held for release
}

// Overdue is one message past its read objective, at this site
// (direction inbound: not yet acknowledged here) or at the origin
// (outbound: no read receipt yet).
type Overdue struct {
	ID         string    `json:"id"`
	Direction  string    `json:"direction"`
	Site       string    `json:"site"` // the other site
	Mailbox    string    `json:"mailbox"`
	Precedence string    `json:"precedence"`
	Submitted  time.Time `json:"submitted_at"`
	Due        time.Time `json:"due"`
}

// HeldMessage is a message waiting for two-person release (State
// "held", Seq 0).
type HeldMessage struct {
	Message
	SubmittedBy string `json:"submitted_by"`   // "user NAME (uid N)" of the submitter
	Node        string `json:"node,omitempty"` // the node that took the submission
}

// HeldReply is the reply of GET PathHeld: at most 1000 messages, in ID
// order (submission order), More set when there were more.
type HeldReply struct {
	Messages []HeldMessage `json:"messages"`
	More     bool          `json:"more,omitempty"`
}

// Held lists the messages held for release (of mailbox, or of every
// mailbox when "").
func (c *Client) Held(ctx context.Context, mailbox string) (*HeldReply, error) {
	var q url.Values
	if mailbox != "" {
		q = url.Values{"mailbox": {mailbox}}
	}
	var r HeldReply
	if _, err := c.do(ctx, http.MethodGet, PathHeld, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Release releases a held message: it is queued for sending. The caller
// must be one of its mailbox's releasers and not its submitter.
func (c *Client) Release(ctx context.Context, id string) (*Message, error) {
	var m Message
	if _, err := c.do(ctx, http.MethodPost, PathMessages+"/"+url.PathEscape(id)+PathReleaseSuffix, nil, nil, "", &m); err != nil {
		return nil, err
	}
	return &m, nil
}
