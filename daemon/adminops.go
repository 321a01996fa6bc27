package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// The admin operations on paths, leadership and drills, as typed requests
// (adminOp). Each is parsed from the socket API's query by its parse
// function and checked where it runs.

// pathsRequest is GET /v1/admin/paths: this node's paths.
type pathsRequest struct{}

func parsePaths(*http.Request) (adminOp, *apiError) { return &pathsRequest{}, nil }

func (*pathsRequest) run(_ context.Context, a *admin, _ adminCaller) (any, *apiError) {
	return a.pathsReply(), nil
}

func (a *admin) pathsReply() *client.PathsReply {
	out := &client.PathsReply{Site: a.cfg.Site, Node: a.cfg.Node, Paths: []client.PathInfo{}}
	for _, p := range a.cfg.Paths {
		m, _ := a.link.PathAdmin(p)
		pa := client.PathAdmin{Node: a.cfg.Node, Path: p, State: "up"}
		if m != transport.AdminUp {
			pa.State, pa.Mode = "down", adminModeName(m)
		}
		out.Admin = append(out.Admin, pa)
	}
	tests := a.tests.snapshot()
	for _, ps := range a.link.Paths() {
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

// pathRequest is POST /v1/admin/paths/{name}/down|up[?mode=close|drop]:
// disable or enable one of this node's paths.
type pathRequest struct {
	Name   string `json:"name"`
	Action string `json:"action"` // "down" or "up"
	Mode   string `json:"mode"`   // down: client.ModeClose (default) or client.ModeDrop
}

func parsePath(r *http.Request) (adminOp, *apiError) {
	return &pathRequest{Name: r.PathValue("name"), Action: r.PathValue("action"), Mode: r.URL.Query().Get("mode")}, nil
}

func (q *pathRequest) run(_ context.Context, a *admin, who adminCaller) (any, *apiError) {
	if q.Name == lanPath {
		return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "%q is the intra-site link, not an inter-site path (paths: %s)", q.Name, strings.Join(a.cfg.Paths, ", "))
	}
	if !slices.Contains(a.cfg.Paths, q.Name) {
		return nil, apiErrorf(http.StatusNotFound, client.CodeNotFound, "no path %q on %s (paths: %s)", q.Name, a.cfg.Node, strings.Join(a.cfg.Paths, ", "))
	}
	var mode transport.AdminMode
	switch q.Action {
	case "up":
		mode = transport.AdminUp
	case "down":
		switch q.Mode {
		case "", client.ModeClose:
			mode = transport.AdminClose
		case client.ModeDrop:
			mode = transport.AdminDrop
		default:
			return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "mode=%q is not %s or %s", q.Mode, client.ModeClose, client.ModeDrop)
		}
	default:
		return nil, apiErrorf(http.StatusNotFound, client.CodeNotFound, "no action %q for a path (down or up)", q.Action)
	}
	if err := a.link.SetPathAdmin(q.Name, mode); err != nil {
		return nil, apiErrorf(http.StatusInternalServerError, client.CodeInternal, "%s", err)
	}
	pa := client.PathAdmin{Node: a.cfg.Node, Path: q.Name, State: "up"}
	if mode != transport.AdminUp {
		pa.State, pa.Mode = "down", adminModeName(mode)
	}
	a.log.Warn("path administratively changed", "path", q.Name, "state", pa.State, "mode", pa.Mode, "by", who.by)
	return pa, nil
}

func credString(c *syscall.Ucred) string {
	if c == nil {
		return "relay"
	}
	return fmt.Sprintf("uid=%d pid=%d", c.Uid, c.Pid)
}

// transferRequest is POST /v1/admin/leader/transfer[?to=NODE][&site=SITE]:
// move the leadership of this site, or of another (Site) that allows it.
type transferRequest struct {
	Site string `json:"site,omitempty"` // "" or this site: ours
	To   string `json:"to,omitempty"`   // "": Raft's choice
}

func parseTransfer(r *http.Request) (adminOp, *apiError) {
	q := r.URL.Query()
	return &transferRequest{Site: q.Get("site"), To: q.Get("to")}, nil
}

func (q *transferRequest) run(ctx context.Context, a *admin, _ adminCaller) (any, *apiError) {
	if q.Site != "" && q.Site != a.cfg.Site {
		return a.transferRemote(ctx, q.Site, q.To)
	}
	if q.To != "" && a.cfg.siteOf(q.To) != a.cfg.Site {
		return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "to=%q is not a node of site %s (%s)", q.To, a.cfg.Site, strings.Join(a.cfg.siteNodes(), ", "))
	}
	lt, err := a.transferLeader(ctx, q.To)
	if err != nil {
		status, code := http.StatusServiceUnavailable, client.CodeUnavailable
		if errors.Is(err, errTransferConflict) {
			status, code = http.StatusConflict, client.CodeConflict
		}
		return nil, apiErrorf(status, code, "%s", err)
	}
	return lt, nil
}

// transferRemote asks a node of another site to move its leadership
// (callDrillTransfer; the site must allow remote drills).
func (a *admin) transferRemote(ctx context.Context, site, to string) (*client.LeaderTransfer, *apiError) {
	if a.cfg.siteConfig(site) == nil {
		return nil, apiErrorf(http.StatusBadRequest, client.CodeUnknownSite, "unknown site %q", site)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*a.cfg.SubmitTimeout.Duration)
	defer cancel()
	rep, _, err := a.link.CallSite(ctx, site, "", &transport.Call{Op: callDrillTransfer, Body: []byte(to)})
	if err != nil {
		return nil, apiErrorf(http.StatusBadGateway, client.CodeUnavailable, "asking site %s: %v", site, err)
	}
	if err := callCodes.Err(callDrillTransfer, rep); err != nil {
		if retryable(err) { // the far node was starting, stopping, or had no leader: ask again
			return nil, apiErrorf(http.StatusServiceUnavailable, client.CodeUnavailable, "site %s: %s", site, rep.Error)
		}
		return nil, apiErrorf(http.StatusConflict, client.CodeConflict, "site %s: %s", site, rep.Error)
	}
	var lt client.LeaderTransfer
	if err := json.Unmarshal(rep.Body, &lt); err != nil {
		return nil, apiErrorf(http.StatusBadGateway, client.CodeInternal, "bad reply from %s: %v", site, err)
	}
	return &lt, nil
}

var errTransferConflict = errors.New("leader transfer not possible")

// transferLeader moves this site's leadership to `to` ("" = Raft's choice)
// and waits until a new leader is known. On a follower it asks the leader
// (callAdminTransfer).
func (a *admin) transferLeader(ctx context.Context, to string) (*client.LeaderTransfer, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*a.cfg.SubmitTimeout.Duration)
	defer cancel()
	leader, _ := a.raft.Leader()
	switch {
	case leader == "":
		return nil, fmt.Errorf("%w: site %s has no leader now", errTransferConflict, a.cfg.Site)
	case to == leader:
		return nil, fmt.Errorf("%w: %s is already the leader", errTransferConflict, to)
	case leader != a.cfg.Node:
		var lt client.LeaderTransfer
		aerr, err := relayAdmin(ctx, a.link, leader, callAdminTransfer, &transferRequest{To: to}, a.cfg.SubmitTimeout.Duration, &lt)
		if err != nil {
			return nil, fmt.Errorf("asking leader %s: %w", leader, err)
		}
		if aerr != nil {
			return nil, fmt.Errorf("%w: leader %s: %s", errTransferConflict, leader, aerr.Msg)
		}
		return &lt, nil
	}
	start := time.Now()
	if err := a.raft.TransferLeadership(ctx, to); err != nil {
		if errors.Is(err, consensus.ErrNotLeader) || errors.Is(err, consensus.ErrUnknownServer) {
			return nil, fmt.Errorf("%w: %v", errTransferConflict, err)
		}
		return nil, err
	}
	for {
		if l, _ := a.raft.Leader(); l != "" && l != a.cfg.Node {
			a.log.Warn("leadership transferred", "to", l, "took", time.Since(start).Round(time.Millisecond))
			return &client.LeaderTransfer{Site: a.cfg.Site, From: a.cfg.Node, To: l}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stepped down, but no new leader within the timeout: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// arrivalsRequest is GET /v1/admin/drill/arrivals: this site's drill
// canaries as committed at another site, asked over the link.
type arrivalsRequest struct {
	Site string `json:"site"`
	arrivalsQuery
}

// arrivalsQuery is what a drill asks another site (callDrillArrivals).
type arrivalsQuery struct {
	Precedence queue.Precedence `json:"precedence"`
	After      uint64           `json:"after"`
	Max        int              `json:"max"`
}

func (a *admin) parseArrivals(r *http.Request) (adminOp, *apiError) {
	q := r.URL.Query()
	site := q.Get("site")
	if aerr := a.checkDrillSite(site); aerr != nil {
		return nil, aerr
	}
	prec, err := queue.ParsePrecedence(q.Get("precedence"))
	if err != nil {
		return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "precedence %v", err)
	}
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if err != nil && q.Get("after") != "" {
		return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "after=%q is not a sequence number", q.Get("after"))
	}
	max := 1000
	if s := q.Get("max"); s != "" {
		if max, err = strconv.Atoi(s); err != nil || max < 0 || max > 1000 {
			return nil, apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "max=%q is not 0 to 1000", s)
		}
	}
	return &arrivalsRequest{Site: site, arrivalsQuery: arrivalsQuery{Precedence: prec, After: after, Max: max}}, nil
}

// checkDrillSite refuses a site that is not another configured site.
func (a *admin) checkDrillSite(site string) *apiError {
	if site == "" || site == a.cfg.Site || a.cfg.siteConfig(site) == nil {
		return apiErrorf(http.StatusBadRequest, client.CodeUnknownSite, "site=%q is not another configured site (%s)", site, strings.Join(a.cfg.remoteSites(), ", "))
	}
	return nil
}

func (q *arrivalsRequest) run(ctx context.Context, a *admin, _ adminCaller) (any, *apiError) {
	if aerr := a.checkDrillSite(q.Site); aerr != nil {
		return nil, aerr
	}
	body, _ := json.Marshal(q.arrivalsQuery)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.SubmitTimeout.Duration)
	defer cancel()
	rep, _, err := a.link.CallSite(ctx, q.Site, "", &transport.Call{Op: callDrillArrivals, Body: body})
	if err != nil {
		return nil, apiErrorf(http.StatusBadGateway, client.CodeUnavailable, "asking site %s: %v", q.Site, err)
	}
	if rep.Error != "" {
		return nil, apiErrorf(http.StatusBadGateway, client.CodeUnavailable, "site %s: %s", q.Site, rep.Error)
	}
	var out client.ArrivalsReply
	if err := json.Unmarshal(rep.Body, &out); err != nil {
		return nil, apiErrorf(http.StatusBadGateway, client.CodeInternal, "bad reply from %s: %v", q.Site, err)
	}
	return out, nil
}

// serveArrivals answers another site's drill (callDrillArrivals): its
// canaries as committed here. It only ever shows the caller's own
// channel.
func (a *admin) serveArrivals(origin string, body []byte) ([]byte, error) {
	var q arrivalsQuery
	if err := json.Unmarshal(body, &q); err != nil || !q.Precedence.Valid() || q.Max < 0 || q.Max > 1000 {
		return nil, fmt.Errorf("%w: bad arrivals query", errBadRelay)
	}
	out := client.ArrivalsReply{Site: a.cfg.Site, Precedence: q.Precedence.String(), Next: q.After, Arrivals: []client.Arrival{}}
	as, next, last, err := a.store.Arrivals(origin, q.Precedence, q.After, queue.FlagDrill, max(q.Max, 0), 50_000)
	if err != nil {
		return nil, err
	}
	out.Last = last
	if q.Max > 0 {
		out.Next = next
	}
	for _, ar := range as {
		out.Arrivals = append(out.Arrivals, client.Arrival{Seq: ar.Seq, ID: ar.ID, Key: ar.Key,
			SubmittedAt: time.Unix(0, ar.SubmittedAt).UTC(), ArrivedAt: time.Unix(0, ar.ArrivedAt).UTC()})
	}
	return json.Marshal(out)
}

// serveDrillTransfer answers another site's drill (callDrillTransfer):
// it moves this site's leadership to the node named by body ("" = Raft's
// choice), if this site allows remote drills.
func (a *admin) serveDrillTransfer(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
	if !a.cfg.AllowRemoteDrills {
		return nil, fmt.Errorf("site %s does not let other sites move its leader (set allow_remote_drills = true in its config to allow drills to)", a.cfg.Site)
	}
	a.log.Warn("leader transfer requested by another site's drill", "from", from)
	lt, err := a.transferLeader(ctx, string(body))
	if err != nil {
		return nil, err
	}
	return json.Marshal(lt)
}
