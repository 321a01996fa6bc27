package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// The audit log on the socket API. Reading it is open to every caller of
// the socket, like status and message lookups: it holds no payloads, only
// what those already show (message IDs, channels, times) and which admin
// actions were taken by whom; verifying a site's history must not need
// the power to take its paths down. Operator actions are recorded by
// wrapping the admin endpoints that change something (audited).

// Limits of the audit endpoints.
const (
	defaultAuditN = 1000
	maxAuditN     = queue.MaxAuditPage
)

// auditRoutes registers the audit log's read endpoints on mux.
func (a *apiServer) auditRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+client.PathAuditEntries, a.auditEntries)
	mux.HandleFunc("GET "+client.PathAuditCheckpoint, a.auditCheckpoint)
	mux.HandleFunc("GET "+client.PathAuditCheckpoints, a.auditCheckpoints)
	mux.HandleFunc("GET "+client.PathAuditKeys, a.auditKeys)
}

func (a *apiServer) auditEntries(w http.ResponseWriter, r *http.Request) {
	q := queryOf(r.URL.RawQuery)
	from, err := q.uint("from", 0, 0, maxPos)
	if err == nil && q["id"] != "" && q["from"] != "" {
		err = errors.New("give id or from, not both")
	}
	limit := uint64(0)
	if err == nil {
		limit, err = q.uint("limit", defaultAuditN, 1, maxAuditN)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	var es []queue.AuditEntry
	size := a.store.AuditSize()
	if id := q["id"]; id != "" {
		es, err = a.store.AuditEntriesOf(id)
	} else {
		es, size, err = a.store.AuditEntries(int64(from), int(limit))
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	out := client.AuditEntries{Site: a.cfg.Site, Size: size, Entries: make([]client.AuditEntry, 0, len(es))}
	for _, e := range es {
		out.Entries = append(out.Entries, auditEntryJSON(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// auditEntryJSON is an entry as the API shows it: as stored, and decoded.
func auditEntryJSON(e queue.AuditEntry) client.AuditEntry {
	out := client.AuditEntry{Index: e.Index, Record: e.Record, Hash: e.Hash[:]}
	rec, err := queue.DecodeAuditRecord(e.Record)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.Kind, out.Time, out.ID, out.Origin, out.Dest = rec.Kind.String(), time.Unix(0, rec.Time).UTC(), rec.ID, rec.Origin, rec.Dest
	if rec.Kind != queue.AuditOperator {
		out.Precedence, out.Seq, out.PayloadHash = rec.Precedence.String(), rec.Seq, rec.PayloadHash
	}
	out.Node, out.User, out.Peer, out.Action, out.Detail = rec.Node, rec.Actor.User, rec.Actor.Peer, rec.Action, rec.Detail
	if rec.Actor.UID >= 0 {
		out.UID = &rec.Actor.UID
	}
	if rec.Actor.PID >= 0 {
		out.PID = &rec.Actor.PID
	}
	return out
}

func checkpointJSON(cp *queue.AuditCheckpoint) client.AuditCheckpoint {
	out := client.AuditCheckpoint{Site: cp.Site, Size: cp.Size, Root: cp.Root[:], Note: string(cp.Note),
		Time: time.Unix(0, cp.Time).UTC(), Fork: cp.Fork, Prev: cp.Prev}
	for _, h := range cp.Proof {
		out.Proof = append(out.Proof, h[:])
	}
	return out
}

// auditSite reads ?site=: "" is ours; anything else must be a configured
// site.
func (a *apiServer) auditSite(w http.ResponseWriter, q query) (string, bool) {
	site := q["site"]
	if site == "" {
		return a.cfg.Site, true
	}
	if a.cfg.siteConfig(site) == nil {
		writeError(w, http.StatusBadRequest, client.CodeUnknownSite, fmt.Sprintf("site=%q is not a configured site", site))
		return "", false
	}
	return site, true
}

func (a *apiServer) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	site, ok := a.auditSite(w, queryOf(r.URL.RawQuery))
	if !ok {
		return
	}
	cp, err := a.store.AuditCheckpoint(site)
	switch {
	case errors.Is(err, queue.ErrNoCheckpoint):
		writeError(w, http.StatusNotFound, client.CodeNotFound, fmt.Sprintf("no audit checkpoint of site %s here yet (the leaders sign and exchange one every audit_checkpoint_interval)", site))
	case err != nil:
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
	default:
		writeJSON(w, http.StatusOK, checkpointJSON(cp))
	}
}

func (a *apiServer) auditCheckpoints(w http.ResponseWriter, r *http.Request) {
	q := queryOf(r.URL.RawQuery)
	site, ok := a.auditSite(w, q)
	if !ok {
		return
	}
	after, err := q.uint("after", 0, 0, maxPos)
	limit := uint64(0)
	if err == nil {
		limit, err = q.uint("limit", defaultAuditN, 1, maxAuditN)
	}
	if f := q["forks"]; err == nil && f != "" && f != "true" && f != "false" {
		err = fmt.Errorf("forks=%q is not true or false", f)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, client.CodeBadRequest, err.Error())
		return
	}
	cps, err := a.store.AuditCheckpoints(site, q["forks"] == "true", int64(after), int(limit))
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	out := client.AuditCheckpoints{Site: site, Checkpoints: make([]client.AuditCheckpoint, 0, len(cps))}
	for i := range cps {
		out.Checkpoints = append(out.Checkpoints, checkpointJSON(&cps[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

// auditKeys answers with the keyring file this node pins: a verifier
// without its own copy checks signatures with it (and says so).
func (a *apiServer) auditKeys(w http.ResponseWriter, _ *http.Request) {
	p, err := trust.KeyPath(a.cfg.Trust.Keys)
	var b []byte
	if err == nil {
		b, err = os.ReadFile(p)
	}
	if err == nil && len(b) > trust.MaxKeyringSize {
		err = fmt.Errorf("%s is over %d bytes", p, trust.MaxKeyringSize)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, "reading the keyring: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Keys string `json:"keys"`
	}{string(b)})
}

// audited wraps an admin endpoint that changes something: once it has
// answered (with any status: a refusal is recorded too), the action, the
// request and its status are recorded in the audit log with the caller's
// peer credentials. action names the action; for the path endpoint it is
// completed with the {action} of the path ("path_down", "path_up").
func (a *apiServer) audited(action string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		name := action
		if v := r.PathValue("action"); v == "up" || v == "down" {
			name += "_" + v
		}
		a.audit.record(r.Context(), name, fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.RequestURI(), sw.status, http.StatusText(sw.status)), actorOf(caller(r)))
	}
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes of a streamed backup).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
