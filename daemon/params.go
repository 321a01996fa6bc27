package daemon

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hotline-link/hotline/daemon/client"
)

// routeParams lists the query parameters each route of the socket API
// accepts, by ServeMux pattern; any other parameter is refused. Routes not
// listed (/metrics) take any names, but still well-formed.
var routeParams = map[string][]string{
	"POST " + client.PathMessages:                      {"to", "from", "type", "precedence", "id", "ttl", "wait", "timeout", "drill"},
	"GET " + client.PathMessages + "/{id}":             {},
	"GET " + client.PathMessages + "/{id}/proof":       {},
	"GET " + client.PathInbox:                          {"after", "max", "max_bytes", "wait", "mailbox"},
	"POST " + client.PathAck:                           {},
	"GET " + client.PathStatus:                         {},
	"GET /healthz":                                     {},
	"GET /readyz":                                      {},
	"GET " + client.PathAdminPaths:                     {"node"},
	"POST " + client.PathAdminPath + "{name}/{action}": {"mode", "node"},
	"POST " + client.PathAdminLeader:                   {"to", "site", "node"},
	"GET " + client.PathAdminArrivals:                  {"site", "precedence", "after", "max", "node"},
	"GET " + client.PathAdminRaft:                      {"node"},
	"GET " + client.PathAdminMembers:                   {"node"},
	"POST " + client.PathAdminMemberAdd:                {"id", "raft"},
	"POST " + client.PathAdminMemberRemove:             {"id", "force"},
	"POST " + client.PathAdminMemberReplace:            {"old", "id", "raft", "force"},
	"GET " + client.PathAdminBackup:                    {},
	"GET " + client.PathAuditEntries:                   {"from", "limit", "id"},
	"GET " + client.PathAuditCheckpoint:                {"site"},
	"GET " + client.PathAuditCheckpoints:               {"site", "after", "limit", "forks"},
	"GET " + client.PathAuditKeys:                      {},

	// release.go
	"POST " + client.PathMessages + "/{id}" + client.PathReleaseSuffix: {},
	"GET " + client.PathHeld: {"mailbox"},
}

// Limits of query parameter values.
const (
	maxPos         = math.MaxInt64        // the largest inbox position or sequence number accepted
	maxTTL         = 365 * 24 * time.Hour // a ttl beyond a year is a mistake (and would overflow)
	maxSubmitWait  = time.Hour            // submit's timeout
	maxInboxWait   = 5 * time.Minute      // inbox long-poll
	defaultInboxN  = 100
	maxInboxN      = 1000
	defInboxBytes  = 4 << 20  // max_bytes default
	maxInboxBytes  = 16 << 20 // max_bytes limit
	maxAckIDs      = 1000     // ids in one ack
	maxAckBodySize = 2 << 20  // an ack body: 1000 ids of 255 bytes, escaped
)

// query is a request's query string parsed strictly: every name and value
// is well-escaped, valid UTF-8 without control characters, and given once.
// An empty value is the same as an absent parameter.
type query map[string]string

// parseQuery parses raw strictly; allowed (nil: any) are the names the
// route takes. Its errors name the parameter and what was wrong.
func parseQuery(raw string, allowed []string) (query, error) {
	q := query{}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("query parameter %q: malformed name: %v", k, err)
		}
		if strings.Contains(k, ";") {
			return nil, fmt.Errorf("query parameter %q: contains ';' (separate parameters with '&'; write ';' in a value as %%3B)", name)
		}
		if err := printable(name); err != nil {
			return nil, fmt.Errorf("query parameter %q: name %v", name, err)
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("query parameter %s=%q: malformed value: %v", name, v, err)
		}
		if strings.Contains(v, ";") {
			return nil, fmt.Errorf("query parameter %s=%q: contains ';' (separate parameters with '&'; write ';' in a value as %%3B)", name, v)
		}
		if err := printable(value); err != nil {
			return nil, fmt.Errorf("query parameter %s: value %v", name, err)
		}
		if allowed != nil && !slices.Contains(allowed, name) {
			known := "none"
			if len(allowed) > 0 {
				known = strings.Join(allowed, ", ")
			}
			return nil, fmt.Errorf("unknown query parameter %q (this endpoint takes: %s)", name, known)
		}
		if _, dup := q[name]; dup {
			return nil, fmt.Errorf("query parameter %s is given more than once", name)
		}
		q[name] = value
	}
	return q, nil
}

// printable refuses invalid UTF-8 and control characters (C0, DEL, C1,
// and Unicode format characters such as bidi overrides).
func printable(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }); i >= 0 {
		return fmt.Errorf("%q contains a control character at byte %d", s, i)
	}
	return nil
}

// queryOf returns the request's query; the router has checked it.
func queryOf(rawQuery string) query {
	q, err := parseQuery(rawQuery, nil)
	if err != nil {
		return query{}
	}
	return q
}

// duration returns parameter name as a non-negative Go duration, def when
// absent, refusing values over maxv.
func (q query) duration(name string, def, maxv time.Duration) (time.Duration, error) {
	s := q[name]
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration like 30s (at most %v)", name, s, maxv)
	}
	if d > maxv {
		return 0, fmt.Errorf("%s=%q is over the limit of %v", name, s, maxv)
	}
	return d, nil
}

// uint returns parameter name as a decimal integer in [lo, hi], def when
// absent.
func (q query) uint(name string, def, lo, hi uint64) (uint64, error) {
	s := q[name]
	if s == "" {
		return def, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%q is not a number from %d to %d", name, s, lo, hi)
	}
	return v, nil
}
