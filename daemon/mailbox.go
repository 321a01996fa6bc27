package daemon

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"net"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// Mailboxes: a site's named inboxes (config [[mailboxes]]), who may use
// each (by the socket caller's peer credentials), which media types each
// takes, its read objectives, two-person release and spool directories.
// A message is addressed to SITE/MAILBOX and sent from a mailbox of its
// origin; "default" (stored as "") is the mailbox of a message addressed
// to a site alone.

// MailboxConfig is one [[mailboxes]] table.
type MailboxConfig struct {
	Name string `toml:"name"`
	// Send, Read and Ack list who may send from the mailbox, read its
	// inbox and acknowledge its messages: "*" (every caller of the
	// socket), "user:NAME", "group:NAME", "uid:N", "gid:N". Root may
	// always. Empty: root only.
	Send []string `toml:"send"`
	Read []string `toml:"read"`
	Ack  []string `toml:"ack"`
	// Types are the media types the mailbox accepts (its inbox, checked
	// at the destination, and at the origin once it knows the list);
	// empty: any type.
	Types []string `toml:"types"`
	// Objectives are the read objectives of messages arriving in this
	// mailbox, by precedence name (flash, immediate, priority, routine);
	// a precedence not named keeps its default (defaultObjectives).
	Objectives map[string]Duration `toml:"objectives"`
	// Release: a message sent from this mailbox waits, held, until one of
	// Releasers other than its submitter releases it.
	Release   bool     `toml:"release"`
	Releasers []string `toml:"releasers"`
	// SpoolOut is a directory whose files are submitted, one message
	// each, to SpoolTo (SITE/MAILBOX) from this mailbox; SpoolIn a
	// Maildir-style directory (tmp/, new/) into which this mailbox's
	// messages are written and then acknowledged. "" turns either off.
	SpoolOut        string `toml:"spool_out"`
	SpoolTo         string `toml:"spool_to"`
	SpoolType       string `toml:"spool_type"`
	SpoolPrecedence string `toml:"spool_precedence"`
	SpoolIn         string `toml:"spool_in"`
}

// defaultObjectives are ACP 121's read objectives by precedence.
var defaultObjectives = [numPrecedences]time.Duration{
	queue.Flash:     10 * time.Minute,
	queue.Immediate: 30 * time.Minute,
	queue.Priority:  3 * time.Hour,
	queue.Routine:   6 * time.Hour,
}

// Right is what a caller may do with a mailbox.
type Right string

// The rights of a mailbox.
const (
	RightSend    Right = "send"
	RightRead    Right = "read"
	RightAck     Right = "ack"
	RightRelease Right = "release"
)

// principal is one resolved entry of a rights list.
type principal struct {
	any      bool
	uid, gid int64 // -1 when not that kind
	text     string
}

func parsePrincipal(s string) (principal, error) {
	p := principal{uid: -1, gid: -1, text: s}
	kind, name, ok := strings.Cut(s, ":")
	switch {
	case s == "*":
		p.any = true
	case !ok || name == "":
		return p, fmt.Errorf("%q is not \"*\", user:NAME, group:NAME, uid:N or gid:N", s)
	case kind == "uid" || kind == "gid":
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return p, fmt.Errorf("%q: %s is not a number", s, name)
		}
		if kind == "uid" {
			p.uid = int64(n)
		} else {
			p.gid = int64(n)
		}
	case kind == "user":
		u, err := user.Lookup(name)
		if err != nil {
			return p, fmt.Errorf("%q: no such user", s)
		}
		n, _ := strconv.ParseInt(u.Uid, 10, 64)
		p.uid = n
	case kind == "group":
		g, err := user.LookupGroup(name)
		if err != nil {
			return p, fmt.Errorf("%q: no such group", s)
		}
		n, _ := strconv.ParseInt(g.Gid, 10, 64)
		p.gid = n
	default:
		return p, fmt.Errorf("%q: unknown kind %q (want user, group, uid or gid)", s, kind)
	}
	return p, nil
}

// mailbox is one mailbox's resolved policy.
type mailbox struct {
	cfg        MailboxConfig
	name       string // as stored: "" for the default mailbox
	rights     map[Right][]principal
	objectives [numPrecedences]time.Duration
}

// mailboxes is a site's mailbox policy. Without a [[mailboxes]] table
// named "default", the default mailbox exists with every right for
// every caller, so a first look needs no configuration.
type mailboxes struct {
	byName            map[string]*mailbox // by stored name ("" default)
	names             []string            // display names, sorted
	defaultConfigured bool                // a [[mailboxes]] table names "default"
}

func newMailboxes(cfgs []MailboxConfig) (*mailboxes, error) {
	m := &mailboxes{byName: map[string]*mailbox{}}
	for i, c := range cfgs {
		mb, err := newMailbox(c)
		if err != nil {
			// newMailbox's errors begin with the key they are about.
			k, msg, _ := strings.Cut(err.Error(), ": ")
			return nil, &ConfigError{Key: fmt.Sprintf("mailboxes[%d].%s", i, k), Msg: msg}
		}
		if m.byName[mb.name] != nil {
			return nil, &ConfigError{Key: fmt.Sprintf("mailboxes[%d].name", i), Msg: fmt.Sprintf("mailbox %q is configured twice", c.Name)}
		}
		m.byName[mb.name] = mb
	}
	m.defaultConfigured = m.byName[""] != nil
	if !m.defaultConfigured {
		mb, err := newMailbox(MailboxConfig{Name: queue.DefaultMailbox, Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"}})
		if err != nil {
			return nil, err
		}
		m.byName[""] = mb
	}
	for _, mb := range m.byName {
		m.names = append(m.names, queue.MailboxName(mb.name))
	}
	slices.Sort(m.names)
	return m, nil
}

func newMailbox(c MailboxConfig) (*mailbox, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("name: is required")
	}
	if err := queue.ValidMailbox(c.Name); err != nil {
		return nil, fmt.Errorf("name: %v", strings.TrimPrefix(err.Error(), queue.ErrInvalid.Error()+": "))
	}
	mb := &mailbox{cfg: c, name: c.Name, rights: map[Right][]principal{}, objectives: defaultObjectives}
	if c.Name == queue.DefaultMailbox {
		mb.name = ""
	}
	for r, list := range map[Right][]string{RightSend: c.Send, RightRead: c.Read, RightAck: c.Ack, RightRelease: c.Releasers} {
		for _, s := range list {
			p, err := parsePrincipal(s)
			if err != nil {
				key := string(r)
				if r == RightRelease {
					key = "releasers"
				}
				return nil, fmt.Errorf("%s: %v", key, err)
			}
			mb.rights[r] = append(mb.rights[r], p)
		}
	}
	mb.cfg.Types = slices.Clone(c.Types)
	for i, t := range c.Types {
		if t == "" {
			return nil, fmt.Errorf("types: an empty media type")
		}
		ct, err := canonicalType(t)
		if err != nil {
			return nil, fmt.Errorf("types: %v", err)
		}
		mb.cfg.Types[i] = ct
	}
	for name, d := range c.Objectives {
		p, err := queue.ParsePrecedence(name)
		if err != nil || name == "" {
			return nil, fmt.Errorf("objectives: %q is not flash, immediate, priority or routine", name)
		}
		if d.Duration < time.Second || d.Duration > 30*24*time.Hour {
			return nil, fmt.Errorf("objectives.%s: %v is out of range (1s to 720h)", name, d.Duration)
		}
		mb.objectives[p] = d.Duration
	}
	if c.Release && len(c.Releasers) == 0 {
		return nil, fmt.Errorf("releasers: release = true needs at least one releaser")
	}
	if c.SpoolOut != "" && c.SpoolTo == "" {
		return nil, fmt.Errorf("spool_to: spool_out needs a destination (SITE/MAILBOX)")
	}
	if c.SpoolType != "" {
		ct, err := canonicalType(c.SpoolType)
		if err != nil {
			return nil, fmt.Errorf("spool_type: %v", err)
		}
		mb.cfg.SpoolType = ct
	}
	if c.SpoolPrecedence != "" {
		if _, err := queue.ParsePrecedence(c.SpoolPrecedence); err != nil {
			return nil, fmt.Errorf("spool_precedence: %v", err)
		}
	}
	return mb, nil
}

// mailboxes returns the config's mailbox policy, which Validate (or
// Open, for a Config built in memory) resolved.
func (c *Config) mailboxes() *mailboxes { return c.mbox }

// summary describes each mailbox in a line, for check-config: its name
// and who may do what ("root" alone when a right lists nobody).
func (m *mailboxes) summary() []string {
	var out []string
	for _, name := range m.names {
		mb := m.get(storedMailbox(name))
		parts := []string{name + ":"}
		for _, r := range []Right{RightSend, RightRead, RightAck} {
			who := "root"
			for _, p := range mb.rights[r] {
				who += "," + p.text
			}
			parts = append(parts, fmt.Sprintf("%s=%s", r, who))
		}
		if len(mb.cfg.Types) > 0 {
			parts = append(parts, "types="+strings.Join(mb.cfg.Types, ","))
		}
		if c := mb.cfg; c.SpoolOut != "" { // spool.go
			parts = append(parts, fmt.Sprintf("spool_out=%s->%s", c.SpoolOut, c.SpoolTo))
		}
		if c := mb.cfg; c.SpoolIn != "" {
			parts = append(parts, "spool_in="+c.SpoolIn)
		}
		if name == queue.DefaultMailbox && !m.defaultConfigured {
			parts = append(parts, "(not configured: open to every caller of the socket)")
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// get returns the mailbox stored as name ("" default), or nil.
func (m *mailboxes) get(name string) *mailbox { return m.byName[name] }

// parseMailbox turns a mailbox name from a caller ("default" or "" the
// default one) into its stored form, or reports why it is not one.
func parseMailbox(s string) (string, error) {
	if s == queue.DefaultMailbox {
		return "", nil
	}
	if err := queue.ValidMailbox(s); err != nil {
		return "", fmt.Errorf("%s", strings.TrimPrefix(err.Error(), queue.ErrInvalid.Error()+": "))
	}
	return s, nil
}

// parseAddress splits "SITE" or "SITE/MAILBOX" into the site and the
// stored mailbox name.
func parseAddress(to string) (site, mb string, err error) {
	site, box, ok := strings.Cut(to, "/")
	if !ok {
		return site, "", nil
	}
	if box == "" {
		return "", "", fmt.Errorf("destination %q has an empty mailbox (SITE or SITE/MAILBOX)", to)
	}
	if mb, err = parseMailbox(box); err != nil {
		return "", "", fmt.Errorf("destination %q: %v", to, err)
	}
	return site, mb, nil
}

// caller is who called the socket: its peer credentials and all its
// groups (the primary and the supplementary ones it had when it
// connected, SO_PEERGROUPS).
type callerID struct {
	cred   *syscall.Ucred
	groups []uint32
}

func (c *callerID) root() bool { return c != nil && c.cred != nil && c.cred.Uid == 0 }

func (c *callerID) String() string {
	if c == nil || c.cred == nil {
		return "an unidentified caller"
	}
	s := fmt.Sprintf("uid %d", c.cred.Uid)
	if u, err := user.LookupId(strconv.FormatUint(uint64(c.cred.Uid), 10)); err == nil {
		s = fmt.Sprintf("user %s (uid %d)", u.Username, c.cred.Uid)
	}
	return s
}

func (c *callerID) inGroup(gid int64) bool {
	if c.cred != nil && int64(c.cred.Gid) == gid {
		return true
	}
	return slices.ContainsFunc(c.groups, func(g uint32) bool { return int64(g) == gid })
}

// may reports whether c has right r on mb.
func (mb *mailbox) may(c *callerID, r Right) bool {
	if c.root() {
		return true
	}
	if c == nil || c.cred == nil {
		return false
	}
	for _, p := range mb.rights[r] {
		switch {
		case p.any:
			return true
		case p.uid >= 0 && int64(c.cred.Uid) == p.uid:
			return true
		case p.gid >= 0 && c.inGroup(p.gid):
			return true
		}
	}
	return false
}

// forbidden is the 403 message for c lacking right r on mb.
func (mb *mailbox) forbidden(c *callerID, r Right) string {
	who := "root"
	if list := mb.rights[r]; len(list) > 0 {
		var ps []string
		for _, p := range list {
			ps = append(ps, p.text)
		}
		who = "root and " + strings.Join(ps, ", ")
	}
	return fmt.Sprintf("mailbox %q: %s lacks the %s right (%s may %s)", queue.MailboxName(mb.name), c, r, who, r)
}

// check returns nil if c has right r on the mailbox stored as name, else
// the 403 message (also for a mailbox not configured here, which only
// root may use).
func (m *mailboxes) check(c *callerID, name string, r Right) (string, bool) {
	mb := m.get(name)
	if mb == nil {
		if c.root() {
			return "", true
		}
		return fmt.Sprintf("mailbox %q is not configured at this site; only root may %s it", queue.MailboxName(name), r), false
	}
	if mb.may(c, r) {
		return "", true
	}
	return mb.forbidden(c, r), false
}

// allowed returns the stored names of the mailboxes c has right r on, or
// nil when c is root (every mailbox, configured or not).
func (m *mailboxes) allowed(c *callerID, r Right) []string {
	if c.root() {
		return nil
	}
	out := []string{}
	for name, mb := range m.byName {
		if mb.may(c, r) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// typeAllowed reports whether mb takes messages of media type t ("" is
// application/octet-stream).
func (mb *mailbox) typeAllowed(t string) bool {
	if len(mb.cfg.Types) == 0 {
		return true
	}
	if t == "" {
		t = "application/octet-stream"
	}
	// The list is canonical since newMailbox: spell t the same way once,
	// rather than parse every entry again for every message.
	ct, err := canonicalType(t)
	return err == nil && slices.Contains(mb.cfg.Types, ct)
}

// sameMediaType compares media types as RFC 6838 and RFC 2045 do: type,
// subtype and parameter names case-insensitive, spaces and quoting of
// parameter values not significant. A type that does not parse equals
// nothing.
func sameMediaType(a, b string) bool {
	ca, errA := canonicalType(a)
	cb, errB := canonicalType(b)
	return errA == nil && errB == nil && ca == cb
}

// canonicalType returns media type t in one spelling (mime's: lowercase
// type, subtype and parameter names, parameters sorted, values quoted
// only where needed), so that every check — STIX validation, a mailbox's
// types, the other site's — reads the type the same way; "" stays "".
// A type mime cannot parse (an unbalanced quote, a parameter without a
// value, a duplicate parameter) is an error.
func canonicalType(t string) (string, error) {
	if t == "" {
		return "", nil
	}
	if err := queue.ValidType(t); err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), queue.ErrInvalid.Error()+": "))
	}
	mt, params, err := mime.ParseMediaType(t)
	if err != nil {
		return "", fmt.Errorf("media type %q: %v", t, err)
	}
	c := mime.FormatMediaType(mt, params)
	if c == "" {
		return "", fmt.Errorf("media type %q cannot be written canonically", t)
	}
	return c, nil
}

// peerGroups returns the groups of the process at the other end of a
// Unix socket connection when it connected (SO_PEERGROUPS).
func peerGroups(c net.Conn) ([]uint32, error) {
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var out []uint32
	var serr error
	err = raw.Control(func(fd uintptr) {
		buf := make([]uint32, 64)
		for {
			n := uint32(len(buf) * 4)
			_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_PEERGROUPS,
				uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
			switch {
			case e == unix.ERANGE && int(n/4) > len(buf) && n/4 <= 1<<16:
				buf = make([]uint32, n/4)
				continue
			case e != 0:
				serr = e
			default:
				out = buf[:n/4]
			}
			return
		}
	})
	if err != nil {
		return nil, err
	}
	return out, serr
}

const numPrecedences = 4 // queue.Precedences

// mailboxStatus lists this site's mailboxes: the configured ones and
// those holding unread messages without being configured (a mailbox
// removed from the config while messages waited for it).
func (n *Node) mailboxStatus() []client.MailboxStatus {
	unread, held := n.store.MailboxUnread(), n.store.HeldCount()
	overdue := n.overdue.inbound() // objectives.go
	m := n.cfg.mailboxes()
	var out []client.MailboxStatus
	for _, name := range m.names {
		mb := m.get(storedMailbox(name))
		ms := client.MailboxStatus{Name: name, Configured: true, Unread: unread[name], Overdue: overdue[name], Objectives: map[string]string{}, Held: held[name]}
		for _, p := range queue.Precedences {
			ms.Objectives[p.String()] = mb.objectives[p].String()
		}
		out = append(out, ms)
		delete(unread, name)
	}
	for _, name := range slices.Sorted(maps.Keys(unread)) {
		out = append(out, client.MailboxStatus{Name: name, Unread: unread[name], Overdue: overdue[name]})
	}
	return out
}

// storedMailbox is the stored form of a mailbox's display name.
func storedMailbox(name string) string {
	if name == queue.DefaultMailbox {
		return ""
	}
	return name
}

// remoteMailbox is what another site told this one of one of its
// mailboxes.
type remoteMailbox struct {
	Name       string // stored form ("" default)
	Types      []string
	Objectives [numPrecedences]time.Duration
}

// remoteMailboxes holds the other sites' mailbox lists, as they last
// sent them (the mailbox exchange fills it). A site not heard from is
// unknown: its mailboxes are checked at the destination only, and its
// objectives are the defaults.
type remoteMailboxes struct {
	mu    sync.Mutex
	sites map[string]map[string]*remoteMailbox // site -> stored name -> mailbox
}

func newRemoteMailboxes() *remoteMailboxes {
	return &remoteMailboxes{sites: map[string]map[string]*remoteMailbox{}}
}

// set replaces site's list.
func (r *remoteMailboxes) set(site string, boxes []remoteMailbox) {
	m := make(map[string]*remoteMailbox, len(boxes))
	for i := range boxes {
		m[boxes[i].Name] = &boxes[i]
	}
	r.mu.Lock()
	r.sites[site] = m
	r.mu.Unlock()
}

// lookup returns site's mailbox (stored name) and whether site's list is
// known at all (known && mb == nil: site has no such mailbox).
func (r *remoteMailboxes) lookup(site, name string) (mb *remoteMailbox, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, known := r.sites[site]
	if !known {
		return nil, false
	}
	return m[name], true
}

// objective is the read objective of a message of precedence p sent to
// site's mailbox name: as that site stated it, else the default.
func (r *remoteMailboxes) objective(site, name string, p queue.Precedence) time.Duration {
	if mb, _ := r.lookup(site, name); mb != nil && p.Valid() && mb.Objectives[p] > 0 {
		return mb.Objectives[p]
	}
	if !p.Valid() {
		return defaultObjectives[queue.Routine]
	}
	return defaultObjectives[p]
}
