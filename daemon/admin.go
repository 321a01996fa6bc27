package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	"github.com/hotline-link/hotline/transport/pki"
)

// The admin API (README: "Local API"): each operation is a typed request
// (adminOp) that the socket API parses from the query and runs here, or,
// when ?node= names another node of the site, sends to that node as a call
// (callAdmin*, JSON) that runs the same request there. A relay's result
// comes back as the typed reply or an *apiError with the HTTP status, code
// and message the socket API answers with, so that both ways answer alike.
// Followers use the same requests to ask their leader (a leader transfer,
// a membership change) and members for their Raft progress.

// admin runs the admin operations on this node's parts: the requests
// (adminOp) the socket API parses or another node relays, the admin
// calls from other sites' drills, and the check of who may ask. Open
// builds it once the parts exist.
type admin struct {
	cfg     *Config
	log     *slog.Logger
	store   *queue.Store
	raft    *consensus.Node
	link    *transport.Link
	commit  *committer  // members' read barrier
	members *membership // membership changes (member.go)
	tests   *linkTests  // the leader's link tests, for paths (linkHealth.tests)
}

// adminOp is one admin operation as a typed request. run does it with a;
// who asked is for the log. Its reply is JSON-encodable; its error says
// how the socket API answers.
type adminOp interface {
	run(ctx context.Context, a *admin, who adminCaller) (any, *apiError)
}

// adminCaller is who asked for an admin operation: a caller of this
// node's socket, or another node of the site relaying one.
type adminCaller struct {
	by      string // for the log: "uid=0 pid=42", or "relay from alpha-2"
	relayed bool
}

// apiError is an admin operation's failure as the socket API answers it;
// a relay carries it back as it is.
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Msg    string `json:"error"`
	Retry  bool   `json:"retry,omitempty"` // answer with Retry-After: 1
}

func (e *apiError) Error() string { return e.Msg }

func apiErrorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.Retry {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, e.Status, e.Code, e.Msg)
}

// adminResult is a relayed admin operation's outcome: its reply or its
// error.
type adminResult struct {
	Result json.RawMessage `json:"result,omitempty"`
	Err    *apiError       `json:"error,omitempty"`
}

// adminOps are the admin operations another node of the site may relay
// to this one, by call op; each makes an empty request to decode into.
var adminOps = map[string]func() adminOp{
	callAdminPaths:    func() adminOp { return &pathsRequest{} },
	callAdminPath:     func() adminOp { return &pathRequest{} },
	callAdminTransfer: func() adminOp { return &transferRequest{} },
	callAdminArrivals: func() adminOp { return &arrivalsRequest{} },
	callAdminRaft:     func() adminOp { return &raftRequest{} },
	callAdminMembers:  func() adminOp { return &membersRequest{} },
	callAdminMember:   func() adminOp { return &memberRequest{} },
}

// adminRoutes registers the admin API on mux.
func (a *apiServer) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+client.PathAdminPaths, a.admin(callAdminPaths, parsePaths))
	mux.HandleFunc("POST "+client.PathAdminPath+"{name}/{action}", a.audited("path", a.admin(callAdminPath, parsePath)))
	mux.HandleFunc("POST "+client.PathAdminLeader, a.audited("leader_transfer", a.admin(callAdminTransfer, parseTransfer)))
	mux.HandleFunc("GET "+client.PathAdminArrivals, a.admin(callAdminArrivals, a.ops.parseArrivals))
	a.memberRoutes(mux)
	mux.HandleFunc("GET "+client.PathAdminBackup, a.audited("backup", a.adminHere(a.backup))) // backup.go
}

// isAdmin reports whether the caller may use the admin API: root, or a
// member (primary or supplementary) of admin_group.
func (a *admin) isAdmin(cred *syscall.Ucred) bool {
	if cred == nil {
		return false
	}
	if cred.Uid == 0 {
		return true
	}
	if a.cfg.AdminGroup == "" {
		return false
	}
	g, err := user.LookupGroup(a.cfg.AdminGroup)
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

func (a *admin) forbidden(cred *syscall.Ucred) string {
	who := "an unidentified caller"
	if cred != nil {
		who = fmt.Sprintf("uid %d (gid %d)", cred.Uid, cred.Gid)
	}
	if a.cfg.AdminGroup == "" {
		return fmt.Sprintf("the admin API is for root only (no admin_group configured); %s is not root", who)
	}
	return fmt.Sprintf("the admin API is for root and members of group %q; %s is neither", a.cfg.AdminGroup, who)
}

// target checks that r's caller may use the admin API (403
// otherwise) and returns the node ?node= names if that is another node of
// the site, "" if it names none or this one (400 if no node of the site).
func (a *admin) target(r *http.Request) (string, *apiError) {
	if !a.isAdmin(caller(r)) {
		return "", &apiError{Status: http.StatusForbidden, Code: client.CodeForbidden, Msg: a.forbidden(caller(r))}
	}
	node := r.URL.Query().Get("node")
	switch {
	case node == "" || node == a.cfg.Node:
		return "", nil
	case a.cfg.siteOf(node) != a.cfg.Site:
		return "", apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "node=%q is not a node of site %s (%s)", node, a.cfg.Site, strings.Join(a.cfg.siteNodes(), ", "))
	}
	return node, nil
}

// admin serves one admin operation: it checks the caller, parses the
// request and runs it here, or on the node ?node= names (relayed as op).
func (a *apiServer) admin(op string, parse func(*http.Request) (adminOp, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		adm := a.ops
		node, aerr := adm.target(r)
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		req, aerr := parse(r)
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		if node == "" {
			res, aerr := req.run(r.Context(), adm, adminCaller{by: credString(caller(r))})
			if aerr != nil {
				writeAPIError(w, aerr)
				return
			}
			writeJSON(w, http.StatusOK, res)
			return
		}
		var res json.RawMessage
		aerr, err := relayAdmin(r.Context(), adm.link, node, op, req, adm.cfg.SubmitTimeout.Duration, &res)
		switch {
		case err != nil:
			status := http.StatusBadGateway
			if retryable(err) {
				status = http.StatusServiceUnavailable // that node is starting or stopping
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, status, client.CodeUnavailable, fmt.Sprintf("relaying to %s: %v", node, err))
		case aerr != nil:
			writeAPIError(w, aerr)
		default:
			writeJSON(w, http.StatusOK, res)
		}
	}
}

// adminHere serves an admin operation that is not relayed (a backup
// streams): it checks the caller and refuses ?node= naming another node.
func (a *apiServer) adminHere(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		node, aerr := a.ops.target(r)
		if aerr == nil && node != "" {
			aerr = apiErrorf(http.StatusBadRequest, client.CodeBadRequest, "%s is not relayed (node=%q): ask %s through its own socket", r.URL.Path, node, node)
		}
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		h(w, r)
	}
}

// relayAdmin runs req (the admin operation op) on another node of the
// site over link, within d, and decodes its reply into out. The node's answer is
// the *apiError, if it failed there; err is a failure to get an answer
// (the node unreachable, starting or stopping: a *transport.CallError
// with its sentinel).
func relayAdmin(ctx context.Context, link *transport.Link, node, op string, req adminOp, d time.Duration, out any) (*apiError, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	rep, err := link.Call(ctx, node, &transport.Call{Op: op, Body: body})
	if err != nil {
		return nil, err
	}
	if err := callCodes.Err(op, rep); err != nil {
		return nil, err
	}
	var res adminResult
	if err := json.Unmarshal(rep.Body, &res); err != nil {
		return nil, fmt.Errorf("bad relay reply: %w", err)
	}
	if res.Err != nil {
		return res.Err, nil
	}
	if err := json.Unmarshal(res.Result, out); err != nil {
		return nil, fmt.Errorf("bad relay reply: %w", err)
	}
	return nil, nil
}

// serve runs an admin operation another node of the site relayed.
func (a *admin) serve(ctx context.Context, from pki.Identity, op string, body []byte) ([]byte, error) {
	req := adminOps[op]()
	if err := json.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("%w: admin request %s: %v", errBadRelay, op, err)
	}
	res, aerr := req.run(ctx, a, adminCaller{by: "relay from " + from.Node, relayed: true})
	out := adminResult{Err: aerr}
	if aerr == nil {
		b, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		out.Result = b
	}
	return json.Marshal(out)
}

// errBadRelay is a relayed request that does not decode.
var errBadRelay = errors.New("bad relayed request")
