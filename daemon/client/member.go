package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Membership of the site's Raft cluster (admin API).
const (
	PathAdminRaft          = "/v1/admin/raft"            // GET ?node=: RaftInfo of a node of this site
	PathAdminMembers       = "/v1/admin/members"         // GET ?node=: MembersReply
	PathAdminMemberAdd     = "/v1/admin/members/add"     // POST ?id=NODE&raft=ADDR: MemberChange
	PathAdminMemberRemove  = "/v1/admin/members/remove"  // POST ?id=NODE&force=true: MemberChange
	PathAdminMemberReplace = "/v1/admin/members/replace" // POST ?old=NODE&id=NODE&raft=ADDR&force=true: MemberChange
)

// Suffrages of a member.
const (
	SuffrageVoter    = "voter"
	SuffrageNonvoter = "nonvoter" // receives the log, does not vote (a node catching up)
)

// RaftInfo is one node's Raft progress as that node sees it.
type RaftInfo struct {
	Node         string `json:"node"`
	State        string `json:"state"` // leader, follower, candidate, standby, shutdown
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMillis is the time since this node last heard from the
	// leader: 0 on the leader, absent when never.
	LastContactMillis *float64 `json:"last_contact_ms,omitempty"`
}

// Member is one server of the site's Raft configuration.
type Member struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Suffrage string `json:"suffrage"` // SuffrageVoter or SuffrageNonvoter
	Leader   bool   `json:"leader"`
	// Live: the member answered and is in contact with the leader (what
	// `member remove` counts for quorum).
	Live bool `json:"live"`
	// Raft is the member's own view, when it answered; Error says why
	// not.
	Raft  *RaftInfo `json:"raft,omitempty"`
	Error string    `json:"error,omitempty"`
}

// MembersReply is the site's Raft configuration as one node knows it.
type MembersReply struct {
	Site    string   `json:"site"`
	Node    string   `json:"node"` // the node that answered
	Leader  string   `json:"leader"`
	Members []Member `json:"members"`
	// Stale is set when the answering node could not catch up with the
	// site's leader first (no leader, no quorum): Members is then its own
	// latest configuration, which may lag a change just made.
	Stale bool `json:"stale,omitempty"`
}

// MemberChange is the result of an add, remove or replace.
type MemberChange struct {
	Site    string   `json:"site"`
	Leader  string   `json:"leader"`            // the leader that made the change
	Added   string   `json:"added,omitempty"`   // now a voter
	Removed string   `json:"removed,omitempty"` // no longer in the configuration
	Members []Member `json:"members"`           // the configuration afterwards
}

// RaftInfo returns node's Raft progress ("" = the node serving the socket).
func (c *Client) RaftInfo(ctx context.Context, node string) (*RaftInfo, error) {
	var r RaftInfo
	if _, err := c.do(ctx, http.MethodGet, PathAdminRaft, nodeQuery(node), nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Members lists the site's Raft configuration with each member's
// progress, as node ("" = the node serving the socket) sees it.
func (c *Client) Members(ctx context.Context, node string) (*MembersReply, error) {
	var r MembersReply
	if _, err := c.do(ctx, http.MethodGet, PathAdminMembers, nodeQuery(node), nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// MemberAdd adds node id, with Raft address addr ("" = the one in the
// daemon's config), as a voter: first as a non-voter, promoted once it has
// caught up with the leader. Calling it again finishes an add that timed
// out while the node caught up.
func (c *Client) MemberAdd(ctx context.Context, id, addr string) (*MemberChange, error) {
	q := url.Values{"id": {id}}
	if addr != "" {
		q.Set("raft", addr)
	}
	return c.memberChange(ctx, PathAdminMemberAdd, q)
}

// MemberRemove removes node id from the site. Unless force, it is refused
// (CodeConflict) when the voters left would have no live majority or id is
// the leader.
func (c *Client) MemberRemove(ctx context.Context, id string, force bool) (*MemberChange, error) {
	q := url.Values{"id": {id}}
	if force {
		q.Set("force", strconv.FormatBool(force))
	}
	return c.memberChange(ctx, PathAdminMemberRemove, q)
}

// MemberReplace adds node id (as MemberAdd), then removes old (as
// MemberRemove; checked before anything is changed).
func (c *Client) MemberReplace(ctx context.Context, old, id, addr string, force bool) (*MemberChange, error) {
	q := url.Values{"old": {old}, "id": {id}}
	if addr != "" {
		q.Set("raft", addr)
	}
	if force {
		q.Set("force", strconv.FormatBool(force))
	}
	return c.memberChange(ctx, PathAdminMemberReplace, q)
}

func (c *Client) memberChange(ctx context.Context, path string, q url.Values) (*MemberChange, error) {
	var r MemberChange
	if _, err := c.do(ctx, http.MethodPost, path, q, nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}
