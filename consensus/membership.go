package consensus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Membership errors, besides ErrUnknownServer and ErrNotLeader. (Kept
// here rather than in errors.go so that the membership change merges on
// its own; they are sentinels like the others, matched with errors.Is.)
var (
	// ErrWouldLoseQuorum means a membership change would leave the
	// remaining voters without a live majority (or with no voter at all).
	ErrWouldLoseQuorum = errors.New("consensus: the change would leave no live majority of voters")
	// ErrRemoveLeader means the server to remove is the leader: move the
	// leadership elsewhere first.
	ErrRemoveLeader = errors.New("consensus: the server to remove is the leader")
	// ErrMemberConflict means the server ID or address is already in the
	// configuration in a way the change does not allow (another ID with
	// that address, or that ID with another address).
	ErrMemberConflict = errors.New("consensus: conflicting server in the configuration")
)

// Member is one server of the Raft configuration.
type Member struct {
	ID    string
	Addr  string
	Voter bool // false: a non-voter (receives the log, does not count for quorum)
}

// Members returns the latest Raft configuration (possibly not yet
// committed), voters and non-voters, in configuration order.
func (n *Node) Members() ([]Member, error) {
	servers, err := n.latestServers("members")
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(servers))
	for _, s := range servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// latestServers reads the latest configuration (possibly not yet
// committed). While this node hands leadership over, Raft refuses to read
// the configuration; it retries for up to two election timeouts.
func (n *Node) latestServers(op string) ([]raft.Server, error) {
	deadline := time.Now().Add(2 * n.rc.ElectionTimeout)
	for {
		r := n.raft.Load()
		if n.running() == nil {
			if err := n.StorageFull(); err != nil && !n.isClosed() {
				return nil, &opError{op: op, kind: ErrStorageFull, cause: err}
			}
			if r == nil {
				return nil, &opError{op: op, kind: ErrClosed}
			}
		}
		f := r.GetConfiguration()
		err := f.Error()
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, mapRaftError(op, err)
		}
		return f.Configuration().Servers, nil
	}
}

// AddNonvoter adds the server id at addr as a non-voter. It must run on
// the leader (ErrNotLeader otherwise) and returns once the change is
// committed. A voter id is left as it is (no error). id with another
// address, or another server with addr, is ErrMemberConflict.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	op := fmt.Sprintf("add non-voter %s", id)
	return n.change(ctx, op, id, addr, func(r *raft.Raft, cur []raft.Server) raft.IndexFuture {
		for _, s := range cur {
			if string(s.ID) == id && s.Suffrage == raft.Voter {
				return nil
			}
		}
		return r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))
	})
}

// AddVoter adds the server id at addr as a voter, or promotes the
// non-voter id. It must run on the leader and returns once the change is
// committed. A new voter counts for quorum at once: add it as a non-voter
// first and promote it once it has caught up.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	op := fmt.Sprintf("add voter %s", id)
	return n.change(ctx, op, id, addr, func(r *raft.Raft, cur []raft.Server) raft.IndexFuture {
		return r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))
	})
}

// change checks id and addr against the current configuration and runs
// do on the leader, waiting for the commit. do may return nil: nothing to
// change.
func (n *Node) change(ctx context.Context, op, id, addr string, do func(*raft.Raft, []raft.Server) raft.IndexFuture) error {
	r, err := n.active(op)
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return &opError{op: op, kind: ErrNotLeader}
	}
	cur, err := n.latestServers(op)
	if err != nil {
		return err
	}
	for _, s := range cur {
		switch {
		case string(s.ID) == id && string(s.Address) != addr:
			return &opError{op: op, kind: ErrMemberConflict, cause: fmt.Errorf("%s is in the configuration with address %s, not %s: remove it first", id, s.Address, addr)}
		case string(s.ID) != id && string(s.Address) == addr:
			return &opError{op: op, kind: ErrMemberConflict, cause: fmt.Errorf("address %s belongs to %s", addr, s.ID)}
		}
	}
	f := do(r, cur)
	if f == nil {
		return nil
	}
	_, err = n.wait(ctx, op, func() (any, error) { return nil, f.Error() })
	return err
}

// RemoveServer removes the server id from the configuration. It must run
// on the leader and returns once the change is committed; ErrUnknownServer
// if id is not in the configuration. The caller checks quorum first (see
// CheckRemove). A leader that removes itself steps down once the change
// commits.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	op := fmt.Sprintf("remove %s", id)
	r, err := n.active(op)
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return &opError{op: op, kind: ErrNotLeader}
	}
	cur, err := n.latestServers(op)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cur, func(s raft.Server) bool { return string(s.ID) == id }) {
		return &opError{op: op, kind: ErrUnknownServer}
	}
	f := r.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))
	_, err = n.wait(ctx, op, func() (any, error) { return nil, f.Error() })
	return err
}

// CheckRemove decides whether removing id from members is safe: the
// remaining voters must keep a live majority (live reports which servers
// the leader knows to be up and in contact), at least one voter must
// remain, and the leader itself is removed only after a transfer. With
// force the live-majority and leader checks are skipped (never the last
// voter). It is a pure function: the decision of `member remove`.
func CheckRemove(members []Member, id, leader string, live map[string]bool, force bool) error {
	i := slices.IndexFunc(members, func(m Member) bool { return m.ID == id })
	if i < 0 {
		var ids []string
		for _, m := range members {
			ids = append(ids, m.ID)
		}
		return &opError{op: "remove " + id, kind: ErrUnknownServer, cause: fmt.Errorf("servers: %s", strings.Join(ids, ", "))}
	}
	if !members[i].Voter {
		return nil // a non-voter never counts for quorum
	}
	var rest, up []string
	for _, m := range members {
		if m.Voter && m.ID != id {
			rest = append(rest, m.ID)
			if live[m.ID] {
				up = append(up, m.ID)
			}
		}
	}
	if len(rest) == 0 {
		return &opError{op: "remove " + id, kind: ErrWouldLoseQuorum, cause: fmt.Errorf("%s is the last voter", id)}
	}
	if force {
		return nil
	}
	if id == leader {
		return &opError{op: "remove " + id, kind: ErrRemoveLeader, cause: fmt.Errorf("%s leads the site: move the leadership first (hotlinectl leader transfer), or use --force", id)}
	}
	if need := len(rest)/2 + 1; len(up) < need {
		return &opError{op: "remove " + id, kind: ErrWouldLoseQuorum,
			cause: fmt.Errorf("the %d voters left (%s) would need %d live, but only %d are (%s); use --force to remove anyway",
				len(rest), strings.Join(rest, ", "), need, len(up), dashJoin(up))}
	}
	return nil
}

func dashJoin(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
