package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// Online membership changes of the site's Raft cluster (`hotlinectl
// member`). The leader makes every change; a follower relays the request
// to it over the site's LAN, like the other admin relays.
//
//	add NEW:      AddNonvoter(NEW) ─> NEW catches up (snapshot, log) ─> AddVoter(NEW)
//	remove OLD:   CheckRemove (live majority left, OLD not the leader) ─> RemoveServer(OLD)
//	replace:      the check of remove OLD (counting NEW as live) ─> add NEW ─> remove OLD
//
// A new voter counts for quorum at once, so it is promoted only once it
// has applied what the leader had committed when it was added: a node that
// is still downloading a snapshot never holds up commits. Liveness (for
// the quorum check) is what the leader learns by asking each member for
// its Raft progress over the LAN: a member is live when it answers and
// has heard from the leader within two election timeouts.
//
// A node to add must be listed in the site's [[sites.nodes]] of every
// node's config (the link's peer table and the Raft TLS identity check are
// read from the config); on the new node its entry has join = true, so
// that with an empty data_dir it waits to be added instead of
// bootstrapping a cluster of its own (watchJoin logs its progress).

// Bounds of membership changes.
const (
	memberProbeTimeout = time.Second            // asking one member for its progress
	catchUpPoll        = 500 * time.Millisecond // polling a new member's progress
	joinLogEvery       = 2 * time.Second        // a joining node's progress lines
)

// membership makes and shows the site's membership changes on this node.
// It is safe for concurrent use; the leader serialises the changes.
type membership struct {
	cfg         *Config // this node's (read-only)
	raft        *consensus.Node
	link        *transport.Link // to ask members for their progress
	log         *slog.Logger
	siteVersion func() uint64 // the site's (queue.Store.SiteVersion)
}

// checkSpeaks refuses to go on adding id (at addr) when this leader's Raft
// connections to it negotiated a protocol below the site version: it runs
// a release before that version and would stop at the first thing it
// does not understand (README, Upgrading a site). Until the leader has a
// connection to it, nothing is known and nothing refused.
func (m *membership) checkSpeaks(id, addr string) error {
	sv := m.siteVersion()
	if v, _, ok := m.raft.PeerProtocol(addr); ok && uint64(v) < sv {
		return fmt.Errorf("%w: %s speaks hotline-raft/%d, a release before site version %d, which site %s runs: install a release that speaks it on %s (README, Upgrading a site), then run member add %s again; until then it stays a non-voter",
			errMemberConflict, id, v, sv, m.cfg.Site, id, id)
	}
	return nil
}

// catchUpTimeout is how long add waits for a new member to catch up
// before promoting it; relayTimeout bounds a change relayed to the leader.
func (m *membership) catchUpTimeout() time.Duration { return 2 * m.cfg.SubmitTimeout.Duration }
func (m *membership) relayTimeout() time.Duration {
	return m.catchUpTimeout() + 2*m.cfg.SubmitTimeout.Duration
}

// errMember* classify membership failures into HTTP replies.
var (
	errMemberBad      = errors.New("bad membership request")             // 400
	errMemberConflict = errors.New("membership change refused")          // 409
	errMemberUnknown  = errors.New("no such member")                     // 404
	errMemberUnavail  = errors.New("membership change not possible now") // 503, retry
)

// memberRoutes registers the membership admin API on mux.
func (a *apiServer) memberRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+client.PathAdminRaft, a.admin(callAdminRaft, parseRaft))
	mux.HandleFunc("GET "+client.PathAdminMembers, a.admin(callAdminMembers, parseMembers))
	mux.HandleFunc("POST "+client.PathAdminMemberAdd, a.audited("member_add", a.admin(callAdminMember, parseMember)))
	mux.HandleFunc("POST "+client.PathAdminMemberRemove, a.audited("member_remove", a.admin(callAdminMember, parseMember)))
	mux.HandleFunc("POST "+client.PathAdminMemberReplace, a.audited("member_replace", a.admin(callAdminMember, parseMember)))
}

// raftRequest is GET /v1/admin/raft: this node's Raft progress.
type raftRequest struct{}

func parseRaft(*http.Request) (adminOp, *apiError) { return &raftRequest{}, nil }

func (*raftRequest) run(_ context.Context, a *admin, _ adminCaller) (any, *apiError) {
	return a.members.raftInfo(), nil
}

func (m *membership) raftInfo() *client.RaftInfo {
	st := m.raft.Stats()
	leader, _ := m.raft.Leader()
	ri := &client.RaftInfo{Node: m.cfg.Node, State: m.raft.State(), Leader: leader, Term: st.Term,
		LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex}
	if st.LastContact >= 0 {
		ms := millis(st.LastContact)
		ri.LastContactMillis = &ms
	}
	return ri
}

// membersRequest is GET /v1/admin/members: the site's members as this
// node knows them. It first catches up with the leader (a read barrier),
// so that a change the leader has made is in the list on every node;
// without a leader it answers with its own view, marked stale.
type membersRequest struct{}

func parseMembers(*http.Request) (adminOp, *apiError) { return &membersRequest{}, nil }

func (*membersRequest) run(ctx context.Context, a *admin, _ adminCaller) (any, *apiError) {
	bctx, cancel := context.WithTimeout(ctx, memberBarrierTimeout)
	stale := a.commit.readBarrier(bctx) != nil
	cancel()
	out, err := a.members.membersReply(ctx)
	if err != nil {
		return nil, memberAPIError(err)
	}
	out.Stale = stale
	return out, nil
}

// memberBarrierTimeout bounds how long a member list waits to catch up
// with the leader before it answers with this node's own view.
const memberBarrierTimeout = 2 * time.Second

// membersReply is the latest configuration this node knows, each member
// asked for its progress (in parallel, memberProbeTimeout each).
func (m *membership) membersReply(ctx context.Context) (*client.MembersReply, error) {
	ms, err := m.raft.Members()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the Raft configuration: %v", errMemberUnavail, err)
	}
	leader, _ := m.raft.Leader()
	out := &client.MembersReply{Site: m.cfg.Site, Node: m.cfg.Node, Leader: leader, Members: make([]client.Member, len(ms))}
	var wg sync.WaitGroup
	for i, mb := range ms {
		cm := &out.Members[i]
		*cm = client.Member{ID: mb.ID, Addr: mb.Addr, Suffrage: client.SuffrageNonvoter, Leader: mb.ID == leader}
		if mb.Voter {
			cm.Suffrage = client.SuffrageVoter
		}
		wg.Go(func() {
			ri, err := m.memberProgress(ctx, mb.ID)
			if err != nil {
				cm.Error = err.Error()
				return
			}
			cm.Raft = ri
			contact := ri.LastContactMillis != nil && *ri.LastContactMillis <= millis(2*m.cfg.Raft.ElectionTimeout.Duration)
			cm.Live = ri.Leader == leader && leader != "" && (ri.State == "leader" || contact)
		})
	}
	wg.Wait()
	return out, nil
}

// memberProgress asks node (this one, or over the LAN) for its Raft
// progress.
func (m *membership) memberProgress(ctx context.Context, node string) (*client.RaftInfo, error) {
	if node == m.cfg.Node {
		return m.raftInfo(), nil
	}
	if m.cfg.siteOf(node) != m.cfg.Site {
		return nil, fmt.Errorf("%s is not in this node's config (add it to [[sites.nodes]] of site %s)", node, m.cfg.Site)
	}
	// A node the link's probes find down is not asked (the call would
	// only wait out its timeout).
	for _, ps := range m.link.Paths() {
		if ps.Site == m.cfg.Site && ps.Node == node && ps.Path == lanPath && ps.State == transport.PathDown {
			return nil, fmt.Errorf("not reachable: the site's LAN link to %s is down (%s)", node, ps.LastErr)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, memberProbeTimeout)
	defer cancel()
	var ri client.RaftInfo
	aerr, err := relayAdmin(ctx, m.link, node, callAdminRaft, &raftRequest{}, m.cfg.SubmitTimeout.Duration, &ri)
	if err != nil {
		return nil, fmt.Errorf("not reachable: %v", err)
	}
	if aerr != nil {
		return nil, fmt.Errorf("answered %d: %s", aerr.Status, aerr.Msg)
	}
	return &ri, nil
}

// memberRequest is POST /v1/admin/members/add|remove|replace: one
// membership change, made by the leader (a follower relays it there).
type memberRequest struct {
	Action string `json:"action"`         // add, remove, replace
	ID     string `json:"id"`             // the node to add or remove
	Old    string `json:"old,omitempty"`  // replace: the node to remove
	Addr   string `json:"raft,omitempty"` // add, replace: ID's Raft address ("" = from the config)
	Force  bool   `json:"force,omitempty"`
}

func parseMember(r *http.Request) (adminOp, *apiError) {
	q := r.URL.Query()
	action := strings.TrimPrefix(r.URL.Path, client.PathAdminMembers+"/")
	req := &memberRequest{Action: action, ID: q.Get("id"), Old: q.Get("old"), Addr: q.Get("raft")}
	switch f := q.Get("force"); f {
	case "", "false":
	case "true":
		req.Force = true
	default:
		return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "force=%q is not true or false", f)
	}
	return req, nil
}

func (q *memberRequest) run(ctx context.Context, a *admin, who adminCaller) (any, *apiError) {
	asked := *q // relayed as asked: the leader checks it against its own config
	if err := q.check(a.cfg); err != nil {
		return nil, memberAPIError(err)
	}
	leader, _ := a.raft.Leader()
	switch {
	case leader == "":
		return nil, memberAPIError(fmt.Errorf("%w: site %s has no leader now; retry", errMemberUnavail, a.cfg.Site))
	case leader != a.cfg.Node && who.relayed:
		return nil, memberAPIError(fmt.Errorf("%w: %s is no longer the leader (%s is); retry", errMemberUnavail, a.cfg.Node, leader))
	case leader != a.cfg.Node:
		var out client.MemberChange
		aerr, err := relayAdmin(ctx, a.link, leader, callAdminMember, &asked, a.members.relayTimeout(), &out)
		if err != nil {
			return nil, memberAPIError(fmt.Errorf("%w: asking the leader %s: %v", errMemberUnavail, leader, err))
		}
		if aerr != nil {
			return nil, aerr
		}
		return &out, nil
	}
	a.log.Warn("membership change requested", "action", q.Action, "id", q.ID, "old", q.Old, "raft", q.Addr, "force", q.Force, "by", who.by)
	out, err := a.members.changeMembers(ctx, *q)
	if err != nil {
		a.log.Warn("membership change failed", "action", q.Action, "id", q.ID, "old", q.Old, "err", err)
		return nil, memberAPIError(err)
	}
	return out, nil
}

// check validates the request against this node's config and fills in
// Addr. Its errors wrap errMemberBad or errMemberConflict.
func (q *memberRequest) check(cfg *Config) error {
	if err := pki.ValidName(q.ID); err != nil {
		return fmt.Errorf("%w: id: %v", errMemberBad, err)
	}
	if q.Action == "replace" {
		if err := pki.ValidName(q.Old); err != nil {
			return fmt.Errorf("%w: old: %v", errMemberBad, err)
		}
		if q.Old == q.ID {
			return fmt.Errorf("%w: old and id are both %q", errMemberBad, q.ID)
		}
	}
	if q.Action == "remove" {
		return nil // a node no longer in the config can still be removed
	}
	if q.Addr != "" {
		if err := checkAddr(q.Addr); err != nil {
			return fmt.Errorf("%w: raft: %v", errMemberBad, err)
		}
	}
	nc := cfg.nodeConfig(q.ID)
	if nc == nil || cfg.siteOf(q.ID) != cfg.Site {
		return fmt.Errorf("%w: %s is not a node of site %s in %s's config: list it (with join = true) under the site's [[sites.nodes]] in every node's config and restart them one by one first (README: Replacing or adding a node)",
			errMemberConflict, q.ID, cfg.Site, cfg.Node)
	}
	switch {
	case q.Addr == "":
		q.Addr = nc.Raft
	case q.Addr != nc.Raft:
		return fmt.Errorf("%w: --raft %s differs from %s's raft address in the config (%s)", errMemberConflict, q.Addr, q.ID, nc.Raft)
	}
	return nil
}

// changeMembers makes the change on the leader.
func (m *membership) changeMembers(ctx context.Context, q memberRequest) (*client.MemberChange, error) {
	out := &client.MemberChange{Site: m.cfg.Site, Leader: m.cfg.Node}
	switch q.Action {
	case "add":
		if err := m.memberAdd(ctx, q.ID, q.Addr); err != nil {
			return nil, err
		}
		out.Added = q.ID
	case "remove":
		if err := m.memberRemove(ctx, q.ID, q.Force, ""); err != nil {
			return nil, err
		}
		out.Removed = q.ID
	case "replace":
		// Check the removal first (counting the new node as live), so
		// that a replace that would be refused changes nothing.
		if err := m.checkRemove(ctx, q.Old, q.Force, q.ID); err != nil {
			return nil, err
		}
		if err := m.memberAdd(ctx, q.ID, q.Addr); err != nil {
			return nil, err
		}
		out.Added = q.ID
		if err := m.memberRemove(ctx, q.Old, q.Force, ""); err != nil {
			return nil, fmt.Errorf("%s was added, but removing %s failed: %w", q.ID, q.Old, err)
		}
		out.Removed = q.Old
	default:
		return nil, fmt.Errorf("%w: no membership action %q", errMemberBad, q.Action)
	}
	mr, err := m.membersReply(ctx)
	if err == nil {
		out.Members = mr.Members
	}
	return out, nil
}

// memberAdd adds id as a non-voter, waits until it has applied what the
// leader had committed, and promotes it.
func (m *membership) memberAdd(ctx context.Context, id, addr string) error {
	ms, err := m.raft.Members()
	if err != nil {
		return fmt.Errorf("%w: %v", errMemberUnavail, err)
	}
	for _, m := range ms {
		if m.ID == id && m.Voter && m.Addr == addr {
			return nil // already a voter
		}
	}
	start := time.Now()
	if err := m.raft.AddNonvoter(ctx, id, addr); err != nil {
		return classifyMemberErr(err)
	}
	target := m.raft.Stats().CommitIndex
	m.log.Warn("member add: added as a non-voter; waiting for it to catch up", "id", id, "addr", addr, "leader_commit", target)
	wait, cancel := context.WithTimeout(ctx, m.catchUpTimeout())
	defer cancel()
	var applied uint64
	var lastErr error
	lastLog := time.Now()
	for {
		if err := m.checkSpeaks(id, addr); err != nil {
			return err
		}
		ri, err := m.memberProgress(wait, id)
		if err == nil {
			applied = ri.AppliedIndex
			if applied >= target {
				break
			}
		}
		lastErr = err
		if time.Since(lastLog) >= joinLogEvery {
			lastLog = time.Now()
			m.log.Info("member add: catching up", "id", id, "applied", applied, "target", target, "err", err)
		}
		select {
		case <-wait.Done():
			why := fmt.Sprintf("applied %d of %d", applied, target)
			if lastErr != nil {
				why += "; last error: " + lastErr.Error()
			}
			return fmt.Errorf("%w: %s is in the configuration as a non-voter but has not caught up within %v (%s): check that it runs (with join = true), then run member add %s again to make it a voter",
				errMemberUnavail, id, m.catchUpTimeout(), why, id)
		case <-time.After(catchUpPoll):
		}
	}
	if err := m.checkSpeaks(id, addr); err != nil {
		return err
	}
	if err := m.raft.AddVoter(ctx, id, addr); err != nil {
		return classifyMemberErr(err)
	}
	m.log.Warn("member add: now a voter", "id", id, "addr", addr, "applied", applied, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkRemove runs consensus.CheckRemove with what the leader knows now;
// assumeLive (if not "") counts as live (a node about to be added).
func (m *membership) checkRemove(ctx context.Context, id string, force bool, assumeLive string) error {
	mr, err := m.membersReply(ctx)
	if err != nil {
		return err
	}
	var ms []consensus.Member
	live := map[string]bool{}
	for _, m := range mr.Members {
		ms = append(ms, consensus.Member{ID: m.ID, Addr: m.Addr, Voter: m.Suffrage == client.SuffrageVoter})
		live[m.ID] = m.Live
	}
	if assumeLive != "" && !live[assumeLive] {
		ms = append(ms, consensus.Member{ID: assumeLive, Voter: true})
		live[assumeLive] = true
	}
	return classifyMemberErr(consensus.CheckRemove(ms, id, m.cfg.Node, live, force))
}

// memberRemove checks and removes id.
func (m *membership) memberRemove(ctx context.Context, id string, force bool, assumeLive string) error {
	if err := m.checkRemove(ctx, id, force, assumeLive); err != nil {
		return err
	}
	if err := m.raft.RemoveServer(ctx, id); err != nil {
		return classifyMemberErr(err)
	}
	m.log.Warn("member remove: removed", "id", id, "force", force)
	return nil
}

// classifyMemberErr maps consensus errors to the reply classes.
func classifyMemberErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrUnknownServer):
		return fmt.Errorf("%w: %v", errMemberUnknown, err)
	case errors.Is(err, consensus.ErrWouldLoseQuorum), errors.Is(err, consensus.ErrRemoveLeader), errors.Is(err, consensus.ErrMemberConflict):
		return fmt.Errorf("%w: %v", errMemberConflict, err)
	default:
		return fmt.Errorf("%w: %v", errMemberUnavail, err)
	}
}

// memberAPIError is how the socket API answers a membership failure.
func memberAPIError(err error) *apiError {
	switch {
	case errors.Is(err, errMemberBad):
		return apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "%s", err)
	case errors.Is(err, errMemberConflict):
		return apiErrorf(http.StatusConflict, client.CodeConflict, "%s", err)
	case errors.Is(err, errMemberUnknown):
		return apiErrorf(http.StatusNotFound, client.CodeNotFound, "%s", err)
	default:
		e := apiErrorf(http.StatusServiceUnavailable, client.CodeUnavailable, "%s", err)
		e.Retry = true
		return e
	}
}

// watchJoin logs a joining node's progress until it has caught up with
// its leader: every joinLogEvery, whether it is in the configuration yet,
// then its applied index against the leader's commit index. It runs on a
// node whose config entry has join = true (also after a restart, when it
// returns at once).
func (m *membership) watchJoin(ctx context.Context) {
	t := time.NewTicker(joinLogEvery)
	defer t.Stop()
	waited := 0
	var prev uint64 // the leader's commit index at the previous check
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ms, err := m.raft.Members()
		in := false
		for _, mb := range ms {
			in = in || mb.ID == m.cfg.Node
		}
		if err != nil || !in {
			if waited%5 == 0 {
				m.log.Info("joining: not yet in the site's Raft configuration; add this node from a node of the site",
					"command", fmt.Sprintf("hotlinectl member add %s --raft %s", m.cfg.Node, m.cfg.nodeConfig(m.cfg.Node).Raft))
			}
			waited++
			continue
		}
		leader, _ := m.raft.Leader()
		if leader == "" {
			continue
		}
		var lc uint64
		if leader != m.cfg.Node {
			ri, err := m.memberProgress(ctx, leader)
			if err != nil {
				m.log.Info("joining: catching up; leader's progress unknown", "leader", leader, "err", err)
				continue
			}
			lc = ri.CommitIndex
		}
		// Under traffic the leader's commit index keeps moving: caught up
		// is having applied what it had committed at the previous check.
		mine := m.raft.Stats().AppliedIndex
		if mine >= lc || prev > 0 && mine >= prev {
			m.log.Info("joining: caught up with the leader", "leader", leader, "applied", mine, "leader_commit", lc)
			return
		}
		prev = lc
		pct := 100 * float64(mine) / float64(max(lc, 1))
		m.log.Info("joining: catching up", "leader", leader, "applied", mine, "leader_commit", lc,
			"behind", lc-mine, "percent", strconv.FormatFloat(pct, 'f', 1, 64))
	}
}
