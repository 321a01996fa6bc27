package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// Intra-site and inter-site call operations besides callPropose.
const (
	callAdmin         = "admin"          // own site: an admin API request relayed to this node
	callBarrier       = "barrier"        // own site: commit a barrier (link tests)
	callLinkTest      = "linktest"       // other sites: prove this site can commit
	callUpPaths       = "up-paths"       // own site: how many paths to other sites are up here
	callReach         = "reach"          // own site: "SITES PATHS": other sites with a path up here, paths up
	callDrillArrivals = "drill.arrivals" // other sites: their drill canaries as committed here
	callDrillTransfer = "drill.transfer" // other sites: move our leadership (allow_remote_drills)
)

type relayedKey struct{}

// adminRelay is an admin API request relayed to another node of the site.
type adminRelay struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

// adminReply is the relayed request's HTTP reply.
type adminReply struct {
	Status int    `json:"status"`
	Body   []byte `json:"body"`
}

// adminRoutes registers the admin API on mux.
func (a *apiServer) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+client.PathAdminPaths, a.admin(a.paths))
	mux.HandleFunc("POST "+client.PathAdminPath+"{name}/{action}", a.admin(a.pathAdmin))
	mux.HandleFunc("POST "+client.PathAdminLeader, a.admin(a.leaderTransfer))
	mux.HandleFunc("GET "+client.PathAdminArrivals, a.admin(a.arrivals))
	a.memberRoutes(mux)
	mux.HandleFunc("GET "+client.PathAdminBackup, a.admin(a.backup)) // backup.go
}

// isAdmin reports whether the caller may use the admin API: root, or a
// member (primary or supplementary) of admin_group.
func (n *Node) isAdmin(cred *syscall.Ucred) bool {
	if cred == nil {
		return false
	}
	if cred.Uid == 0 {
		return true
	}
	if n.cfg.AdminGroup == "" {
		return false
	}
	g, err := user.LookupGroup(n.cfg.AdminGroup)
	if err != nil {
		return false
	}
	if g.Gid == strconv.FormatUint(uint64(cred.Gid), 10) {
		return true
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(cred.Uid), 10))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, g.Gid)
}

func (n *Node) forbidden(cred *syscall.Ucred) string {
	who := "an unidentified caller"
	if cred != nil {
		who = fmt.Sprintf("uid %d (gid %d)", cred.Uid, cred.Gid)
	}
	if n.cfg.AdminGroup == "" {
		return fmt.Sprintf("the admin API is for root only (no admin_group configured); %s is not root", who)
	}
	return fmt.Sprintf("the admin API is for root and members of group %q; %s is neither", n.cfg.AdminGroup, who)
}

// admin wraps an admin handler: it checks the caller and relays requests
// that name another node of the site (?node=) to that node.
func (a *apiServer) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := a.n
		relayed := r.Context().Value(relayedKey{}) != nil
		if !relayed && !n.isAdmin(caller(r)) {
			writeError(w, http.StatusForbidden, client.CodeForbidden, n.forbidden(caller(r)))
			return
		}
		node := r.URL.Query().Get("node")
		if node == "" || node == n.cfg.Node {
			h(w, r)
			return
		}
		if n.cfg.siteOf(node) != n.cfg.Site {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("node=%q is not a node of site %s (%s)", node, n.cfg.Site, strings.Join(n.siteNodes(), ", ")))
			return
		}
		if relayed {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, "a relayed request names another node")
			return
		}
		q := r.URL.Query()
		q.Del("node")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		status, body, err := n.relayAdmin(r.Context(), node, r.Method, u.String())
		if err != nil {
			status := http.StatusBadGateway
			if retryableText(err.Error()) {
				status = http.StatusServiceUnavailable // that node is starting or stopping
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, status, client.CodeUnavailable, fmt.Sprintf("relaying to %s: %v", node, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}
}

func (n *Node) siteNodes() []string {
	var out []string
	for _, nc := range n.cfg.siteConfig(n.cfg.Site).Nodes {
		out = append(out, nc.Name)
	}
	return out
}

// relayAdmin sends an admin request to another node of the site over the
// intra-site link.
func (n *Node) relayAdmin(ctx context.Context, node, method, u string) (int, []byte, error) {
	return n.relayAdminWithin(ctx, node, method, u, n.cfg.SubmitTimeout.Duration)
}

// relayAdminWithin is relayAdmin with a timeout of d.
func (n *Node) relayAdminWithin(ctx context.Context, node, method, u string, d time.Duration) (int, []byte, error) {
	body, _ := json.Marshal(adminRelay{Method: method, URL: u})
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	rep, err := n.link.Call(ctx, node, &transport.Call{Op: callAdmin, Body: body})
	if err != nil {
		return 0, nil, err
	}
	if rep.Error != "" {
		return 0, nil, errors.New(rep.Error)
	}
	var ar adminReply
	if err := json.Unmarshal(rep.Body, &ar); err != nil {
		return 0, nil, fmt.Errorf("bad relay reply: %w", err)
	}
	return ar.Status, ar.Body, nil
}

// serveRelayedAdmin runs a relayed admin request through this node's API.
func (n *Node) serveRelayedAdmin(ctx context.Context, body []byte) (*transport.Reply, error) {
	var ar adminRelay
	if err := json.Unmarshal(body, &ar); err != nil {
		return &transport.Reply{Error: "bad admin relay: " + err.Error()}, nil
	}
	if !strings.HasPrefix(ar.URL, "/v1/admin/") {
		return &transport.Reply{Error: fmt.Sprintf("relay of %q refused: only the admin API is relayed", ar.URL)}, nil
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, relayedKey{}, true), ar.Method, ar.URL, nil)
	if err != nil {
		return &transport.Reply{Error: "bad admin relay: " + err.Error()}, nil
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	n.api.srv.Handler.ServeHTTP(rec, req)
	out, _ := json.Marshal(adminReply{Status: rec.status, Body: rec.body})
	return &transport.Reply{Body: out}, nil
}

// recorder is a minimal http.ResponseWriter that keeps the reply.
type recorder struct {
	header http.Header
	status int
	body   []byte
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	r.body = append(r.body, p...)
	return len(p), nil
}

// paths serves GET /v1/admin/paths.
func (a *apiServer) paths(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.pathsReply())
}

func (n *Node) pathsReply() *client.PathsReply {
	out := &client.PathsReply{Site: n.cfg.Site, Node: n.cfg.Node, Paths: []client.PathInfo{}}
	for _, p := range n.cfg.Paths {
		m, _ := n.link.PathAdmin(p)
		pa := client.PathAdmin{Node: n.cfg.Node, Path: p, State: "up"}
		if m != transport.AdminUp {
			pa.State, pa.Mode = "down", adminModeName(m)
		}
		out.Admin = append(out.Admin, pa)
	}
	tests := n.linkTests.snapshot()
	for _, ps := range n.link.Paths() {
		pi := client.PathInfo{
			Site: ps.Site, Node: ps.Node, Path: ps.Path, Remote: ps.Remote, State: ps.State,
			Active: ps.Active, RTTMillis: millis(ps.RTT), LossPct: ps.LossPct,
			LastOK: tptrTime(ps.LastOK), LastError: ps.LastErr, LastErrorAt: tptrTime(ps.LastErrAt),
			BytesSent: ps.BytesSent, BytesRecv: ps.BytesRecv, Since: tptrTime(ps.Since),
		}
		if lt, ok := tests[linkTestKey{ps.Site, ps.Path}]; ok {
			pi.LinkTest = &lt
		}
		out.Paths = append(out.Paths, pi)
	}
	return out
}

func adminModeName(m transport.AdminMode) string {
	if m == transport.AdminDrop {
		return client.ModeDrop
	}
	return client.ModeClose
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func tptrTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// pathAdmin serves POST /v1/admin/paths/{name}/down|up.
func (a *apiServer) pathAdmin(w http.ResponseWriter, r *http.Request) {
	n := a.n
	name, action := r.PathValue("name"), r.PathValue("action")
	if name == lanPath {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("%q is the intra-site link, not an inter-site path (paths: %s)", name, strings.Join(n.cfg.Paths, ", ")))
		return
	}
	if !slices.Contains(n.cfg.Paths, name) {
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no path %q on %s (paths: %s)", name, n.cfg.Node, strings.Join(n.cfg.Paths, ", ")))
		return
	}
	var mode transport.AdminMode
	switch action {
	case "up":
		mode = transport.AdminUp
	case "down":
		switch m := r.URL.Query().Get("mode"); m {
		case "", client.ModeClose:
			mode = transport.AdminClose
		case client.ModeDrop:
			mode = transport.AdminDrop
		default:
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("mode=%q is not %s or %s", m, client.ModeClose, client.ModeDrop))
			return
		}
	default:
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no action %q for a path (down or up)", action))
		return
	}
	if err := n.link.SetPathAdmin(name, mode); err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	pa := client.PathAdmin{Node: n.cfg.Node, Path: name, State: "up"}
	if mode != transport.AdminUp {
		pa.State, pa.Mode = "down", adminModeName(mode)
	}
	n.log.Warn("path administratively changed", "path", name, "state", pa.State, "mode", pa.Mode, "by", credString(caller(r)))
	writeJSON(w, http.StatusOK, pa)
}

func credString(c *syscall.Ucred) string {
	if c == nil {
		return "relay"
	}
	return fmt.Sprintf("uid=%d pid=%d", c.Uid, c.Pid)
}

// leaderTransfer serves POST /v1/admin/leader/transfer.
func (a *apiServer) leaderTransfer(w http.ResponseWriter, r *http.Request) {
	n := a.n
	q := r.URL.Query()
	site, to := q.Get("site"), q.Get("to")
	if site != "" && site != n.cfg.Site {
		if n.cfg.siteConfig(site) == nil {
			writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("unknown site %q", site))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*n.cfg.SubmitTimeout.Duration)
		defer cancel()
		rep, _, err := n.link.CallSite(ctx, site, "", &transport.Call{Op: callDrillTransfer, Body: []byte(to)})
		if err != nil {
			writeError(w, http.StatusBadGateway, client.CodeUnavailable, fmt.Sprintf("asking site %s: %v", site, err))
			return
		}
		if rep.Error != "" {
			writeError(w, http.StatusConflict, client.CodeConflict, fmt.Sprintf("site %s: %s", site, rep.Error))
			return
		}
		var lt client.LeaderTransfer
		if err := json.Unmarshal(rep.Body, &lt); err != nil {
			writeError(w, http.StatusBadGateway, client.CodeInternal, "bad reply from "+site+": "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, lt)
		return
	}
	if to != "" && n.cfg.siteOf(to) != n.cfg.Site {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("to=%q is not a node of site %s (%s)", to, n.cfg.Site, strings.Join(n.siteNodes(), ", ")))
		return
	}
	lt, err := n.transferLeader(r.Context(), to)
	if err != nil {
		status, code := http.StatusServiceUnavailable, client.CodeUnavailable
		if errors.Is(err, errTransferConflict) {
			status, code = http.StatusConflict, client.CodeConflict
		}
		writeError(w, status, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, lt)
}

var errTransferConflict = errors.New("leader transfer not possible")

// transferLeader moves this site's leadership to `to` ("" = Raft's choice)
// and waits until a new leader is known. On a follower it asks the leader.
func (n *Node) transferLeader(ctx context.Context, to string) (*client.LeaderTransfer, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*n.cfg.SubmitTimeout.Duration)
	defer cancel()
	leader, _ := n.raft.Leader()
	switch {
	case leader == "":
		return nil, fmt.Errorf("%w: site %s has no leader now", errTransferConflict, n.cfg.Site)
	case to == leader:
		return nil, fmt.Errorf("%w: %s is already the leader", errTransferConflict, to)
	case leader != n.cfg.Node:
		u := url.URL{Path: client.PathAdminLeader}
		if to != "" {
			u.RawQuery = url.Values{"to": {to}}.Encode()
		}
		status, body, err := n.relayAdmin(ctx, leader, http.MethodPost, u.String())
		if err != nil {
			return nil, fmt.Errorf("asking leader %s: %w", leader, err)
		}
		if status != http.StatusOK {
			var e client.Error
			json.Unmarshal(body, &e)
			return nil, fmt.Errorf("%w: leader %s: %s", errTransferConflict, leader, e.Error)
		}
		var lt client.LeaderTransfer
		if err := json.Unmarshal(body, &lt); err != nil {
			return nil, err
		}
		return &lt, nil
	}
	start := time.Now()
	if err := n.raft.TransferLeadership(ctx, to); err != nil {
		if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrUnknownServer) {
			return nil, fmt.Errorf("%w: %v", errTransferConflict, err)
		}
		return nil, err
	}
	for {
		if l, _ := n.raft.Leader(); l != "" && l != n.cfg.Node {
			n.log.Warn("leadership transferred", "to", l, "took", time.Since(start).Round(time.Millisecond))
			return &client.LeaderTransfer{Site: n.cfg.Site, From: n.cfg.Node, To: l}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stepped down, but no new leader within the timeout: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// arrivals serves GET /v1/admin/drill/arrivals by asking a node of the
// destination site.
func (a *apiServer) arrivals(w http.ResponseWriter, r *http.Request) {
	n := a.n
	q := r.URL.Query()
	site := q.Get("site")
	if site == "" || site == n.cfg.Site || n.cfg.siteConfig(site) == nil {
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("site=%q is not another configured site (%s)", site, strings.Join(n.cfg.remoteSites(), ", ")))
		return
	}
	prec, err := queue.ParsePrecedence(q.Get("precedence"))
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, "precedence "+err.Error())
		return
	}
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if err != nil && q.Get("after") != "" {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("after=%q is not a sequence number", q.Get("after")))
		return
	}
	max := 1000
	if s := q.Get("max"); s != "" {
		if max, err = strconv.Atoi(s); err != nil || max < 0 || max > 1000 {
			writeError(w, http.StatusBadRequest, client.CodeBadRequest, fmt.Sprintf("max=%q is not 0 to 1000", s))
			return
		}
	}
	body, _ := json.Marshal(arrivalsQuery{Precedence: prec, After: after, Max: max})
	ctx, cancel := context.WithTimeout(r.Context(), n.cfg.SubmitTimeout.Duration)
	defer cancel()
	rep, _, err := n.link.CallSite(ctx, site, "", &transport.Call{Op: callDrillArrivals, Body: body})
	if err != nil {
		writeError(w, http.StatusBadGateway, client.CodeUnavailable, fmt.Sprintf("asking site %s: %v", site, err))
		return
	}
	if rep.Error != "" {
		writeError(w, http.StatusBadGateway, client.CodeUnavailable, fmt.Sprintf("site %s: %s", site, rep.Error))
		return
	}
	var out client.ArrivalsReply
	if err := json.Unmarshal(rep.Body, &out); err != nil {
		writeError(w, http.StatusBadGateway, client.CodeInternal, "bad reply from "+site+": "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type arrivalsQuery struct {
	Precedence queue.Precedence `json:"precedence"`
	After      uint64           `json:"after"`
	Max        int              `json:"max"`
}

// serveArrivals answers another site's drill: its canaries as committed
// here. It only ever shows the caller's own channel.
func (n *Node) serveArrivals(origin string, body []byte) (*transport.Reply, error) {
	var q arrivalsQuery
	if err := json.Unmarshal(body, &q); err != nil || !q.Precedence.Valid() || q.Max < 0 || q.Max > 1000 {
		return &transport.Reply{Error: "bad arrivals query"}, nil
	}
	out := client.ArrivalsReply{Site: n.cfg.Site, Precedence: q.Precedence.String(), Next: q.After, Arrivals: []client.Arrival{}}
	as, next, last, err := n.store.Arrivals(origin, q.Precedence, q.After, queue.FlagDrill, max(q.Max, 0), 50_000)
	if err != nil {
		return &transport.Reply{Error: err.Error()}, nil
	}
	out.Last = last
	if q.Max > 0 {
		out.Next = next
	}
	for _, a := range as {
		out.Arrivals = append(out.Arrivals, client.Arrival{Seq: a.Seq, ID: a.ID, Key: a.Key,
			SubmittedAt: time.Unix(0, a.SubmittedAt).UTC(), ArrivedAt: time.Unix(0, a.ArrivedAt).UTC()})
	}
	b, _ := json.Marshal(out)
	return &transport.Reply{Body: b}, nil
}
