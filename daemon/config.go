package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// Config is one node's configuration, read from a TOML file. Relative paths
// in it are resolved against the directory of that file. The [[sites]]
// tables describe the whole deployment and can be identical in every
// node's file; site, node, the file paths and the tuning knobs are per node.
type Config struct {
	Site           string   `toml:"site"`
	Node           string   `toml:"node"`
	DataDir        string   `toml:"data_dir"`
	Socket         string   `toml:"socket"`
	SocketMode     string   `toml:"socket_mode"`  // octal, default "0660"
	SocketGroup    string   `toml:"socket_group"` // group owning the socket, default the daemon's
	MaxMessageSize int64    `toml:"max_message_size"`
	SubmitTimeout  Duration `toml:"submit_timeout"`
	// Retention is how long a message is kept after it reached a final
	// state (delivered, read, refused, expired); its idempotency key is honoured
	// for that long.
	Retention Duration `toml:"retention"`
	LogLevel  string   `toml:"log_level"`
	LogFormat string   `toml:"log_format"` // text | json
	// Paths names the inter-site network paths in preference order. Every
	// node of every site gives an address for each of them. "lan" is
	// reserved: a site's nodes reach each other over their Raft address
	// (TCP for Raft, UDP on the same host:port for the intra-site link).
	Paths []string `toml:"paths"`
	// AdminGroup names the group whose members may use the admin API
	// (paths, path down/up, leader transfer, drills) besides root; "" means
	// root only.
	AdminGroup string `toml:"admin_group"`
	// AllowRemoteDrills lets the other sites' drills move this site's
	// leadership (the transfer-destination-leader scenario).
	AllowRemoteDrills bool `toml:"allow_remote_drills"`
	// MetricsListen is the TCP host:port of the read-only metrics
	// listener (/metrics, /healthz, /readyz); "" turns it off.
	MetricsListen string `toml:"metrics_listen"`
	// CertExpiryWarning is how long before the node's certificate or the
	// CA expires an alarm is raised; 0 turns the alarm off.
	CertExpiryWarning Duration `toml:"cert_expiry_warning"`
	// AuditCheckpointInterval is how often, at most, the leader signs a
	// checkpoint of the audit log when it grew, and offers its latest to
	// the other sites (audit.go).
	AuditCheckpointInterval Duration `toml:"audit_checkpoint_interval"`

	TLS   TLSConfig    `toml:"tls"`
	Trust TrustConfig  `toml:"trust"`
	Raft  RaftConfig   `toml:"raft"`
	Link  LinkConfig   `toml:"link"`
	Sites []SiteConfig `toml:"sites"`
	// Mailboxes are this site's mailboxes (mailbox.go); without one named
	// "default", the default mailbox is open to every caller.
	Mailboxes []MailboxConfig `toml:"mailboxes"`

	// file is the config file's path, for error messages.
	file string
	// mbox is Mailboxes resolved (user and group names looked up), set
	// by Validate.
	mbox *mailboxes
	// raftOffer, when set (only by tests, export_test.go), replaces the
	// intra-site protocols this node offers and accepts: a node that
	// speaks hotline-raft/1 only is, to its peers, a node of 0.1.0.
	raftOffer []string
}

// raftProtocols are the intra-site protocols the node speaks, highest
// first (consensus.Protocols).
func (c *Config) raftProtocols() []string {
	if c.raftOffer != nil {
		return c.raftOffer
	}
	return consensus.Protocols()
}

// TLSConfig names the PEM files of the node's identity.
type TLSConfig struct {
	CA   string `toml:"ca"`
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// TrustConfig names the site's keys (package transport/trust): its
// signing and decryption keys, shared by the site's nodes, and the keyring
// pinning every site's public keys. A key file may be a systemd
// credential: "credential:NAME".
type TrustConfig struct {
	SignKey string `toml:"sign_key"`
	KEMKey  string `toml:"kem_key"`
	// OldKEMKeys are retired decryption keys, kept to open payloads sealed
	// to them before a rotation.
	OldKEMKeys []string `toml:"old_kem_keys"`
	Keys       string   `toml:"keys"`
}

// RaftConfig tunes the site's consensus.
type RaftConfig struct {
	HeartbeatTimeout   Duration `toml:"heartbeat_timeout"`
	ElectionTimeout    Duration `toml:"election_timeout"`
	LeaderLeaseTimeout Duration `toml:"leader_lease_timeout"`
	SnapshotThreshold  uint64   `toml:"snapshot_threshold"`
	// SnapshotInterval is how often Raft checks whether snapshot_threshold
	// entries were applied since its last snapshot (jittered up to twice).
	SnapshotInterval Duration `toml:"snapshot_interval"`
}

// LinkConfig tunes the inter-site forwarder.
type LinkConfig struct {
	BatchMessages int      `toml:"batch_messages"` // most messages per batch
	BatchBytes    int      `toml:"batch_bytes"`    // most payload bytes per batch
	Window        int      `toml:"window"`         // batches in flight per channel
	RetryMin      Duration `toml:"retry_min"`
	RetryMax      Duration `toml:"retry_max"`
	SendTimeout   Duration `toml:"send_timeout"` // one batch's round trip
	// ProbeInterval × ProbeMisses is how long a path may go without an
	// answered probe before it is declared down (BFD-style).
	ProbeInterval Duration `toml:"probe_interval"`
	ProbeMisses   int      `toml:"probe_misses"`
	// LinkTestInterval is how often the leader sends a link test on every
	// path to every other site; 0 turns link tests off.
	LinkTestInterval Duration `toml:"link_test_interval"`
	// HandoffAfter is how long a leader must have been without any path to
	// any other site before it hands leadership to a follower that has one.
	HandoffAfter Duration `toml:"handoff_after"`
}

// SiteConfig is one site and its nodes.
type SiteConfig struct {
	Name  string       `toml:"name"`
	Nodes []NodeConfig `toml:"nodes"`
}

// NodeConfig is one node's addresses.
type NodeConfig struct {
	Name  string            `toml:"name"`
	Raft  string            `toml:"raft"`  // TCP host:port of its Raft endpoint (own site)
	Paths map[string]string `toml:"paths"` // path name → UDP host:port of its link endpoint
	// Join marks a node added to a running site (hotlinectl member add):
	// it is not in the voter set a new site bootstraps with, and with an
	// empty data_dir it waits to be added instead of bootstrapping.
	Join bool `toml:"join"`
}

// Duration is a time.Duration written as "5s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"500ms\" or \"10s\")", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig returns the defaults every loaded config starts from.
func DefaultConfig() *Config {
	return &Config{
		SocketMode:     "0660",
		MaxMessageSize: 1 << 20,
		SubmitTimeout:  Duration{10 * time.Second},
		Retention:      Duration{7 * 24 * time.Hour},
		LogLevel:       "info",
		LogFormat:      "text",
		// An alarm a month ahead leaves time to issue and install new
		// certificates on every node.
		CertExpiryWarning: Duration{30 * 24 * time.Hour},
		Paths:             []string{"fiber"},
		Raft: RaftConfig{
			HeartbeatTimeout:   Duration{time.Second},
			ElectionTimeout:    Duration{time.Second},
			LeaderLeaseTimeout: Duration{500 * time.Millisecond},
			SnapshotThreshold:  8192,
			SnapshotInterval:   Duration{2 * time.Minute},
		},
		Link: LinkConfig{
			BatchMessages:    512,
			BatchBytes:       4 << 20,
			Window:           4,
			RetryMin:         Duration{50 * time.Millisecond},
			RetryMax:         Duration{2 * time.Second},
			SendTimeout:      Duration{10 * time.Second},
			ProbeInterval:    Duration{100 * time.Millisecond},
			ProbeMisses:      5,
			LinkTestInterval: Duration{time.Minute},
			HandoffAfter:     Duration{2 * time.Second},
		},
		// A checkpoint a minute bounds what a rewritten history can hide.
		AuditCheckpointInterval: Duration{time.Minute},
	}
}

// LoadConfig reads, resolves and validates a node config file. Unknown
// keys and invalid values are errors naming the file, the key and why.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg := DefaultConfig()
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", file, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, fmt.Errorf("%s:%d: unknown key %q", file, keyLine(data, k[len(k)-1]), k.String())
	}
	cfg.file = file
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cfg.resolve(dir)
	if err := cfg.Validate(); err != nil {
		if ce, ok := errors.AsType[*ConfigError](err); ok {
			ce.Line = lineOfKey(data, ce.Key)
		}
		return nil, err
	}
	return cfg, nil
}

// keyLine finds the first line that defines key, for error messages; 0 if
// it cannot be found.
func keyLine(data []byte, key string) int {
	re := regexp.MustCompile(`^\s*(\[+\s*)?([A-Za-z0-9_."-]+\.)?"?` + regexp.QuoteMeta(key) + `"?\s*[=\]]`)
	for i, line := range strings.Split(string(data), "\n") {
		if re.MatchString(line) {
			return i + 1
		}
	}
	return 0
}

func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Socket)
	for i := range c.Mailboxes {
		abs(&c.Mailboxes[i].SpoolOut)
		abs(&c.Mailboxes[i].SpoolIn)
	}
	abs(&c.TLS.CA)
	abs(&c.TLS.Cert)
	abs(&c.TLS.Key)
	absKey := func(p *string) {
		if !strings.HasPrefix(*p, trust.CredentialPrefix) {
			abs(p)
		}
	}
	absKey(&c.Trust.SignKey)
	absKey(&c.Trust.KEMKey)
	for i := range c.Trust.OldKEMKeys {
		absKey(&c.Trust.OldKEMKeys[i])
	}
	abs(&c.Trust.Keys)
	for i := range c.Mailboxes {
		abs(&c.Mailboxes[i].SpoolOut)
		abs(&c.Mailboxes[i].SpoolIn)
	}
}

// Validate checks the config and returns the first problem, naming the key.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: c.file, Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	if err := pki.ValidName(c.Site); err != nil {
		return bad("site", "%v", err)
	}
	if err := pki.ValidName(c.Node); err != nil {
		return bad("node", "%v", err)
	}
	for key, v := range map[string]string{"data_dir": c.DataDir, "socket": c.Socket, "tls.ca": c.TLS.CA, "tls.cert": c.TLS.Cert, "tls.key": c.TLS.Key,
		"trust.sign_key": c.Trust.SignKey, "trust.kem_key": c.Trust.KEMKey, "trust.keys": c.Trust.Keys} {
		if v == "" {
			return bad(key, "is required")
		}
	}
	if _, err := parseMode(c.SocketMode); err != nil {
		return bad("socket_mode", "%v", err)
	}
	if c.MaxMessageSize < 1 || c.MaxMessageSize > 64<<20 {
		return bad("max_message_size", "%d is out of range (1 byte to 64 MiB)", c.MaxMessageSize)
	}
	if c.SubmitTimeout.Duration < 100*time.Millisecond {
		return bad("submit_timeout", "%v is too short (at least 100ms)", c.SubmitTimeout)
	}
	if c.Retention.Duration < time.Minute {
		return bad("retention", "%v is too short (at least 1m)", c.Retention)
	}
	if d := c.AuditCheckpointInterval.Duration; d < 100*time.Millisecond || d > 24*time.Hour {
		return bad("audit_checkpoint_interval", "%v is out of range (100ms to 24h)", c.AuditCheckpointInterval)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return bad("log_level", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("log_format", "%q is not text or json", c.LogFormat)
	}
	r := c.Raft
	if r.LeaderLeaseTimeout.Duration <= 0 || r.HeartbeatTimeout.Duration < r.LeaderLeaseTimeout.Duration || r.ElectionTimeout.Duration < r.HeartbeatTimeout.Duration {
		return bad("raft", "timeouts must satisfy 0 < leader_lease_timeout <= heartbeat_timeout <= election_timeout (have %v, %v, %v)",
			r.LeaderLeaseTimeout, r.HeartbeatTimeout, r.ElectionTimeout)
	}
	if d := r.SnapshotInterval.Duration; d < time.Second || d > 24*time.Hour {
		return bad("raft.snapshot_interval", "%v is out of range (1s to 24h)", r.SnapshotInterval)
	}
	l := c.Link
	switch {
	case l.BatchMessages < 1 || l.BatchMessages > 10000:
		return bad("link.batch_messages", "%d is out of range (1 to 10000)", l.BatchMessages)
	case l.BatchBytes < 1024:
		return bad("link.batch_bytes", "%d is too small (at least 1024)", l.BatchBytes)
	case l.Window < 1 || l.Window > 64:
		return bad("link.window", "%d is out of range (1 to 64)", l.Window)
	case l.RetryMin.Duration <= 0 || l.RetryMax.Duration < l.RetryMin.Duration:
		return bad("link.retry_min", "need 0 < retry_min <= retry_max (have %v, %v)", l.RetryMin, l.RetryMax)
	case l.SendTimeout.Duration < 100*time.Millisecond:
		return bad("link.send_timeout", "%v is too short (at least 100ms)", l.SendTimeout)
	case l.ProbeInterval.Duration < 10*time.Millisecond:
		return bad("link.probe_interval", "%v is too short (at least 10ms)", l.ProbeInterval)
	case l.ProbeMisses < 1 || l.ProbeMisses > 100:
		return bad("link.probe_misses", "%d is out of range (1 to 100)", l.ProbeMisses)
	case l.LinkTestInterval.Duration != 0 && l.LinkTestInterval.Duration < time.Second:
		return bad("link.link_test_interval", "%v is too short (at least 1s, or 0 to turn link tests off)", l.LinkTestInterval)
	case l.HandoffAfter.Duration < 0:
		return bad("link.handoff_after", "%v is negative", l.HandoffAfter)
	}
	if c.MetricsListen != "" {
		if err := checkListen(c.MetricsListen); err != nil {
			return bad("metrics_listen", "%v", err)
		}
	}
	if c.CertExpiryWarning.Duration < 0 {
		return bad("cert_expiry_warning", "%v is negative (0 turns the alarm off)", c.CertExpiryWarning)
	}
	if c.AdminGroup != "" {
		if err := checkGroup(c.AdminGroup); err != nil {
			return bad("admin_group", "%v", err)
		}
	}
	if len(c.Paths) == 0 {
		return bad("paths", "at least one path is required")
	}
	for i, p := range c.Paths {
		if err := pki.ValidName(p); err != nil {
			return bad("paths", "%v", err)
		}
		if slices.Contains(c.Paths[:i], p) {
			return bad("paths", "%q is listed twice", p)
		}
		if p == lanPath {
			return bad("paths", "%q is reserved for the intra-site link (it uses each node's raft address)", p)
		}
	}
	if len(c.Sites) < 2 {
		return bad("sites", "at least two [[sites]] tables are required (this site and a peer site)")
	}
	seenSite := map[string]bool{}
	seenNode := map[string]bool{}
	seenAddr := map[string]string{}
	for i, s := range c.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		if err := pki.ValidName(s.Name); err != nil {
			return bad(key+".name", "%v", err)
		}
		if seenSite[s.Name] {
			return bad(key+".name", "site %q is defined twice", s.Name)
		}
		seenSite[s.Name] = true
		if len(s.Nodes) == 0 {
			return bad(key, "site %q has no [[sites.nodes]]", s.Name)
		}
		for j, n := range s.Nodes {
			nkey := fmt.Sprintf("%s.nodes[%d]", key, j)
			if err := pki.ValidName(n.Name); err != nil {
				return bad(nkey+".name", "%v", err)
			}
			if seenNode[n.Name] {
				return bad(nkey+".name", "node %q is defined twice", n.Name)
			}
			seenNode[n.Name] = true
			if s.Name == c.Site {
				if err := checkAddr(n.Raft); err != nil {
					return bad(nkey+".raft", "node %q: %v", n.Name, err)
				}
			}
			for _, p := range c.Paths {
				a, ok := n.Paths[p]
				if !ok {
					return bad(nkey+".paths", "node %q has no address for path %q", n.Name, p)
				}
				if err := checkAddr(a); err != nil {
					return bad(nkey+".paths."+p, "node %q: %v", n.Name, err)
				}
				if other, dup := seenAddr[a]; dup {
					return bad(nkey+".paths."+p, "address %s is also used by %s", a, other)
				}
				seenAddr[a] = n.Name + " path " + p
			}
			for p := range n.Paths {
				if !slices.Contains(c.Paths, p) {
					return bad(nkey+".paths."+p, "path %q is not in paths = %q", p, c.Paths)
				}
			}
		}
	}
	self := c.siteConfig(c.Site)
	if self == nil {
		return bad("sites", "this node's site %q has no [[sites]] table", c.Site)
	}
	if !slices.ContainsFunc(self.Nodes, func(n NodeConfig) bool { return !n.Join }) {
		return bad("sites", "every node of site %q has join = true: the nodes that start the site must not have it", c.Site)
	}
	if c.nodeConfig(c.Node) == nil || !slices.ContainsFunc(self.Nodes, func(n NodeConfig) bool { return n.Name == c.Node }) {
		return bad("node", "node %q is not listed under site %q", c.Node, c.Site)
	}
	mbox, err := newMailboxes(c.Mailboxes) // mailbox.go
	if err != nil {
		if ce, ok := errors.AsType[*ConfigError](err); ok {
			ce.File = c.file
		}
		return err
	}
	for i, m := range c.Mailboxes {
		if m.SpoolTo == "" {
			continue
		}
		site, _, err := parseAddress(m.SpoolTo)
		switch {
		case err != nil:
			return bad(fmt.Sprintf("mailboxes[%d].spool_to", i), "%v", err)
		case site == c.Site || c.siteConfig(site) == nil:
			return bad(fmt.Sprintf("mailboxes[%d].spool_to", i), "%q is not another configured site (%s)", site, strings.Join(c.remoteSites(), ", "))
		}
	}
	if key, msg := spoolDirConflict(c.Mailboxes); key != "" { // spool.go
		return bad(key, "%s", msg)
	}
	c.mbox = mbox
	return nil
}

// lanPath is the transport path name of the intra-site link.
const lanPath = "lan"

// checkGroup checks that a group name resolves on this system.
func checkGroup(name string) error {
	if _, err := user.LookupGroup(name); err != nil {
		return fmt.Errorf("group %q: %v", name, err)
	}
	return nil
}

func checkAddr(a string) error {
	if a == "" {
		return errors.New("address is required")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if host == "" || port == "" || port == "0" {
		return fmt.Errorf("%q needs an explicit host and port", a)
	}
	return nil
}

// checkListen accepts host:port for a listener; port 0 picks a free port.
func checkListen(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. \"127.0.0.1:9464\")", a)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", a)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port: %v", a, err)
	}
	_ = host // "" listens on every address, as net.Listen does
	return nil
}

func (c *Config) siteConfig(name string) *SiteConfig {
	for i := range c.Sites {
		if c.Sites[i].Name == name {
			return &c.Sites[i]
		}
	}
	return nil
}

func (c *Config) nodeConfig(name string) *NodeConfig {
	for i := range c.Sites {
		for j := range c.Sites[i].Nodes {
			if c.Sites[i].Nodes[j].Name == name {
				return &c.Sites[i].Nodes[j]
			}
		}
	}
	return nil
}

// siteNodes names the nodes of this node's site, in config order.
func (c *Config) siteNodes() []string {
	var out []string
	for _, nc := range c.siteConfig(c.Site).Nodes {
		out = append(out, nc.Name)
	}
	return out
}

// siteOf returns the site a node belongs to, "" if unknown.
func (c *Config) siteOf(node string) string {
	for _, s := range c.Sites {
		for _, n := range s.Nodes {
			if n.Name == node {
				return s.Name
			}
		}
	}
	return ""
}

// remoteSites lists the other sites, in config order.
func (c *Config) remoteSites() []string {
	var out []string
	for _, s := range c.Sites {
		if s.Name != c.Site {
			out = append(out, s.Name)
		}
	}
	return out
}
