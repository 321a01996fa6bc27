package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// Peer is one voter of the site: its Raft server ID (the node name) and its
// Raft TCP address.
type Peer struct {
	ID   string
	Addr string
}

// Config configures one node. Zero durations and counts take Raft's
// defaults (HeartbeatTimeout 1s, ElectionTimeout 1s, LeaderLeaseTimeout
// 500ms, CommitTimeout 50ms, SnapshotThreshold 8192, SnapshotInterval 120s,
// TrailingLogs 10240); MaxAppendEntries defaults to 256. Raft requires
// LeaderLeaseTimeout ≤ HeartbeatTimeout ≤ ElectionTimeout.
type Config struct {
	// ID is this node's name, its Raft server ID. It must be in Peers.
	ID string
	// Addr is the TCP address to listen on and advertise (host:port). It
	// may be empty when Listener is set; then this node's Peers entry is
	// advertised (the listener's address if Peers does not list it). When set, it must equal this node's Peers entry.
	Addr string
	// Listener, if set, is used instead of listening on Addr. Open takes
	// ownership: it is closed by Close, or by Open on failure.
	Listener net.Listener
	// Dir holds the Raft state: raft.db (log and stable store) and
	// snapshots/ (the two newest are kept). Created if missing.
	Dir string
	// Peers is the site's full voter set including this node. It is used
	// only to bootstrap a Dir without Raft state; all nodes bootstrap with
	// the same list.
	Peers []Peer
	// Join makes a node with no Raft state in Dir start without
	// bootstrapping: it waits, outside any configuration, until the
	// site's leader adds it (AddNonvoter, AddVoter), and catches up from
	// the leader's snapshot and log. Peers may then be empty and need not
	// list ID. It has no effect once Dir has Raft state.
	Join bool
	// ServerTLS accepts Raft connections. The caller sets the certificate,
	// client verification (ClientAuth must require a client certificate,
	// or request one and check it in VerifyConnection, as pki.ServerConfig
	// does), ALPN (NextProtos: Protocols) and identity checks. A client
	// offering none of NextProtos is refused, counted, logged and
	// reported to OnProtocolMismatch.
	ServerTLS *tls.Config
	// ClientTLS returns the TLS config for dialling the peer at addr; the
	// caller pins the identity expected at that address and offers
	// Protocols (NextProtos).
	ClientTLS func(addr string) (*tls.Config, error)
	// OnProtocolMismatch, if set, is called when a Raft handshake fails
	// for want of a common protocol version, at both ends:
	//   - a node dialled us offering none of ours: remote is its TCP
	//     address (it is not authenticated yet: the refusal comes before
	//     the certificate check), offered its offer, ours our list;
	//   - a node we dialled refused every version we offered: remote is
	//     the address dialled, offered our list, ours nil.
	// It is called once per refused handshake, on the handshake's
	// goroutine: it must not block. The lists are the caller's to keep.
	OnProtocolMismatch func(remote string, offered, ours []string)
	// FSM is the replicated state machine.
	FSM StateMachine
	// Logger receives this package's and Raft's logs; nil means
	// slog.Default(). The caller adds identifying attributes (site, node).
	// Raft's routine Info messages arrive at Debug; repeated Raft warnings
	// and errors about one peer at most every 30s.
	Logger *slog.Logger

	// StorageReserve is the free space in Dir's filesystem, in bytes,
	// below which the node stops writing its log and stands by (see
	// [Node.StorageFull]); 0 means DefaultStorageReserve. It resumes once
	// the reserve and a quarter more are free.
	StorageReserve uint64

	// ObserveLogWrite, if set, is called with the duration of every
	// successful Raft log write (one bbolt transaction with its fsync),
	// for a latency metric. It must not block.
	ObserveLogWrite func(time.Duration)

	// SnapshotStored, if set, is called after a snapshot of the state
	// machine is durably in the snapshot store: one this node took, or
	// one it received from the leader (before Restore applies it). From
	// then on Raft can rebuild the state machine from that snapshot and
	// the log. It may block briefly.
	SnapshotStored func()

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	MaxAppendEntries   int
}

// defaultMaxAppendEntries is used when Config.MaxAppendEntries is 0.
const defaultMaxAppendEntries = 256

// Validate reports every problem of c, joined, each naming the field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("consensus: config: "+format, args...))
	}
	if c.ID == "" {
		bad("ID is empty")
	}
	if c.Dir == "" {
		bad("Dir is empty")
	}
	if c.FSM == nil {
		bad("FSM is nil")
	}
	if c.ServerTLS == nil {
		bad("ServerTLS is nil (Raft traffic must be TLS)")
	} else {
		switch {
		case c.ServerTLS.ClientAuth == tls.RequireAndVerifyClientCert, c.ServerTLS.ClientAuth == tls.RequireAnyClientCert:
		case c.ServerTLS.ClientAuth == tls.RequestClientCert && c.ServerTLS.VerifyConnection != nil:
			// The caller verifies the client's certificate itself.
		default:
			bad("ServerTLS.ClientAuth is %v without a VerifyConnection check: Raft peers must present a client certificate", c.ServerTLS.ClientAuth)
		}
		if len(c.ServerTLS.Certificates) == 0 && c.ServerTLS.GetCertificate == nil && c.ServerTLS.GetConfigForClient == nil {
			bad("ServerTLS has no certificate")
		}
	}
	if c.ClientTLS == nil {
		bad("ClientTLS is nil (Raft traffic must be TLS)")
	}
	if c.Listener == nil {
		if c.Addr == "" {
			bad("Addr is empty and there is no Listener")
		} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("Addr %q: %v", c.Addr, err)
		}
	}
	if len(c.Peers) == 0 && !c.Join {
		bad("Peers is empty")
	}
	ids := make(map[string]bool)
	addrs := make(map[string]bool)
	self := false
	for i, p := range c.Peers {
		switch {
		case p.ID == "":
			bad("Peers[%d]: ID is empty", i)
		case ids[p.ID]:
			bad("Peers[%d]: duplicate ID %q", i, p.ID)
		}
		ids[p.ID] = true
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			bad("Peers[%d] (%s): Addr %q: %v", i, p.ID, p.Addr, err)
		} else if addrs[p.Addr] {
			bad("Peers[%d] (%s): duplicate Addr %q", i, p.ID, p.Addr)
		}
		addrs[p.Addr] = true
		if p.ID == c.ID && c.ID != "" {
			self = true
			if c.Addr != "" && p.Addr != c.Addr {
				bad("Addr %q differs from this node's Peers entry %q", c.Addr, p.Addr)
			}
		}
	}
	if c.ID != "" && len(c.Peers) > 0 && !self && !c.Join {
		bad("ID %q is not in Peers", c.ID)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout},
		{"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout},
		{"CommitTimeout", c.CommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval},
	} {
		if d.v < 0 {
			bad("%s is negative (%v)", d.name, d.v)
		}
	}
	if c.MaxAppendEntries < 0 || c.MaxAppendEntries > 1024 {
		bad("MaxAppendEntries %d is outside 0..1024", c.MaxAppendEntries)
	}
	if len(errs) == 0 {
		if _, err := c.raftConfig(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// advertise returns the address this node gives its peers.
func (c *Config) advertise() string {
	if c.Addr != "" {
		return c.Addr
	}
	for _, p := range c.Peers {
		if p.ID == c.ID {
			return p.Addr
		}
	}
	if c.Listener != nil { // a joining node not in Peers
		return c.Listener.Addr().String()
	}
	return ""
}

// raftConfig builds and checks the Raft configuration (without Logger and
// NotifyCh, which Open sets).
func (c *Config) raftConfig() (*raft.Config, error) {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.BatchApplyCh = true
	// Raft's go-metrics also repeat per-peer timings with the peer's name
	// in the metric's key; the labelled form is enough.
	rc.NoLegacyTelemetry = true
	rc.MaxAppendEntries = defaultMaxAppendEntries
	if c.MaxAppendEntries > 0 {
		rc.MaxAppendEntries = c.MaxAppendEntries
	}
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&rc.HeartbeatTimeout, c.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, c.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, c.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, c.CommitTimeout)
	setDur(&rc.SnapshotInterval, c.SnapshotInterval)
	if c.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.TrailingLogs > 0 {
		rc.TrailingLogs = c.TrailingLogs
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("consensus: config: raft: %w", err)
	}
	return rc, nil
}

// bootstrapConfiguration is the initial voter set from Peers.
func (c *Config) bootstrapConfiguration() raft.Configuration {
	var conf raft.Configuration
	for _, p := range c.Peers {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(p.ID),
			Address:  raft.ServerAddress(p.Addr),
		})
	}
	return conf
}
