package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The audit log's read endpoints (any caller of the socket).
const (
	PathAuditEntries     = "/v1/audit/entries"     // GET ?from=N&limit=N (default 1000, at most 10000), or ?id=ID: AuditEntries
	PathAuditCheckpoint  = "/v1/audit/checkpoint"  // GET ?site=SITE: the latest AuditCheckpoint (ours, or held of SITE); 404 not_found if none
	PathAuditCheckpoints = "/v1/audit/checkpoints" // GET ?site=SITE&after=SIZE&limit=N&forks=true: AuditCheckpoints
	PathAuditKeys        = "/v1/audit/keys"        // GET: {"keys": the keyring file the node pins}
)

// AuditEntries is a page of the audit log: Size is the log's size when
// read; Entries are in index order.
type AuditEntries struct {
	Site    string       `json:"site"`
	Size    int64        `json:"size"`
	Entries []AuditEntry `json:"entries"`
}

// AuditEntry is one audit record: Record is its canonical encoding (what
// the tree's leaf hashes, package queue's AuditRecord), Hash the leaf hash
// stored when it was appended; the other fields are Record decoded (empty
// when it does not decode).
type AuditEntry struct {
	Index  int64  `json:"index"`
	Record []byte `json:"record"`
	Hash   []byte `json:"hash"`

	Kind        string    `json:"kind,omitempty"`
	Time        time.Time `json:"time"`
	ID          string    `json:"id,omitempty"`
	Origin      string    `json:"origin,omitempty"`
	Dest        string    `json:"dest,omitempty"`
	Precedence  string    `json:"precedence,omitempty"`
	Seq         uint64    `json:"seq,omitempty"`
	PayloadHash []byte    `json:"payload_hash,omitempty"`
	Node        string    `json:"node,omitempty"`
	UID         *int64    `json:"uid,omitempty"`
	User        string    `json:"user,omitempty"`
	PID         *int64    `json:"pid,omitempty"`
	Peer        string    `json:"peer,omitempty"`
	Action      string    `json:"action,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	Error       string    `json:"error,omitempty"` // why Record does not decode
}

// AuditCheckpoint is a signed checkpoint of a site's audit log: Note is
// the C2SP signed note (its text: "hotline/SITE/audit", the size, the
// root in base64). For a checkpoint held of another site, Proof is the
// consistency proof from its checkpoint of size Prev (0: none); Fork marks
// one kept as evidence because it is inconsistent with those held.
type AuditCheckpoint struct {
	Site  string    `json:"site"`
	Size  int64     `json:"size"`
	Root  []byte    `json:"root"`
	Note  string    `json:"note"`
	Time  time.Time `json:"time"`
	Fork  bool      `json:"fork,omitempty"`
	Prev  int64     `json:"prev,omitempty"`
	Proof [][]byte  `json:"proof,omitempty"`
}

// AuditCheckpoints is a list of checkpoints of one site, by size.
type AuditCheckpoints struct {
	Site        string            `json:"site"`
	Checkpoints []AuditCheckpoint `json:"checkpoints"`
}

// AuditEntries returns up to limit (0: the daemon's default) records from
// index from.
func (c *Client) AuditEntries(ctx context.Context, from int64, limit int) (*AuditEntries, error) {
	q := url.Values{"from": {strconv.FormatInt(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r AuditEntries
	if _, err := c.do(ctx, http.MethodGet, PathAuditEntries, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AuditEntriesOf returns the records about message id, with their indices.
func (c *Client) AuditEntriesOf(ctx context.Context, id string) (*AuditEntries, error) {
	var r AuditEntries
	if _, err := c.do(ctx, http.MethodGet, PathAuditEntries, url.Values{"id": {id}}, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AuditCheckpoint returns the latest signed checkpoint of this site's
// audit log (site "" or this site), or the latest held of another site.
func (c *Client) AuditCheckpoint(ctx context.Context, site string) (*AuditCheckpoint, error) {
	var q url.Values
	if site != "" {
		q = url.Values{"site": {site}}
	}
	var r AuditCheckpoint
	if _, err := c.do(ctx, http.MethodGet, PathAuditCheckpoint, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AuditCheckpoints lists the checkpoints of site ("": ours) above size
// after, at most limit (0: the daemon's default); with forks, the forks
// kept of site instead.
func (c *Client) AuditCheckpoints(ctx context.Context, site string, forks bool, after int64, limit int) (*AuditCheckpoints, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if site != "" {
		q.Set("site", site)
	}
	if forks {
		q.Set("forks", "true")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r AuditCheckpoints
	if _, err := c.do(ctx, http.MethodGet, PathAuditCheckpoints, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AuditKeys returns the keyring file the node pins (every site's public
// keys).
func (c *Client) AuditKeys(ctx context.Context) ([]byte, error) {
	var r struct {
		Keys string `json:"keys"`
	}
	if _, err := c.do(ctx, http.MethodGet, PathAuditKeys, nil, nil, "", &r); err != nil {
		return nil, err
	}
	return []byte(r.Keys), nil
}
