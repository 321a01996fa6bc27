package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// Node is one running hotline node: the site's replicated queue, its Raft
// membership, its end of the inter-site link and its local socket API.
//
// Lifecycle (see nodeState for how work is admitted in each state):
//
//	Open ──> starting ──> running ──Close──> stopping ──> stopped
//	                       │  ▲
//	              LeaderCh │  │ lost leadership
//	                       ▼  │
//	      leading (forwarder, receipts, expiry, link tests run)
//
// Close is idempotent and safe to call from any goroutine, also while Open
// is still running (it waits for Open to finish first).
type Node struct {
	cfg        *Config
	log        *slog.Logger
	store      *queue.Store
	raft       *consensus.Node
	link       *transport.Link
	api        *apiServer
	commit     *committer       // propose, group commit, relay, read index (commit.go)
	members    *membership      // membership changes (member.go)
	linkHealth *linkHealth      // link tests, reach, leader hand-off (linkhealth.go)
	health     *health          // health, readiness, alarms (health.go)
	admin      *admin           // admin operations and drill calls (admin.go, adminops.go)
	audit      *auditor         // audit records, checkpoints and their exchange (audit.go)
	remote     *remoteMailboxes // the other sites' mailbox lists (mailbox.go)
	objectives *objectives      // read objectives (objectives.go)
	overdue    *overdueWatch    // messages past their read objective (objectives.go)
	metrics    *metrics
	mserv      *metricsServer     // nil unless metrics_listen is set
	keys       *pki.Keyring       // replaced by reload
	site       *siteKeys          // signing, decryption and pinned keys (sitekeys.go)
	sealer     *sealer            // payload envelopes (seal.go)
	versions   *versionMismatches // protocol version mismatches, for the alarm (versions.go)
	sender     *sender            // the core of a submission (sender.go)
	start      time.Time
	siteWait   atomic.Pointer[string] // on the leader: why the site version is not raised yet (siteversion.go)

	life   lifecycle
	opened chan struct{} // closed when Open has returned

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}

	failOnce sync.Once
	failErr  error // why the node stopped by itself; set before done closes
}

// Open starts a node from a validated config. It returns once the socket
// is listening; the node joins or elects its site's leader in the
// background.
func Open(cfg *Config, log *slog.Logger) (n *Node, err error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.Node)
	bundle, err := pki.Load(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		return nil, err
	}
	if want := (pki.Identity{Site: cfg.Site, Node: cfg.Node}); bundle.Identity != want {
		return nil, fmt.Errorf("%s: certificate is for %s but this node is %s", cfg.TLS.Cert, bundle.Identity, want)
	}
	site, err := loadSiteKeys(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.mbox == nil { // a Config not validated (tests build them)
		if cfg.mbox, err = newMailboxes(cfg.Mailboxes); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = &Node{cfg: cfg, log: log, start: time.Now(), ctx: ctx, cancel: cancel, done: make(chan struct{}), opened: make(chan struct{})}
	n.keys = pki.NewKeyring(bundle)
	n.site = site
	n.remote = newRemoteMailboxes()
	n.metrics = newMetrics(cfg)
	n.versions = newVersionMismatches(log)
	self := n // the return statements below set n to nil
	defer func() {
		close(self.opened)
		if err != nil {
			self.Close()
		}
	}()

	var sites []string
	for _, s := range cfg.Sites {
		sites = append(sites, s.Name)
	}
	// Raft rebuilds state.db from its snapshot and log, so once it holds
	// a snapshot the state's commits need no fsync (queue/unsynced.go).
	hasSnap, err := consensus.HasSnapshot(filepath.Join(cfg.DataDir, "raft"))
	if err != nil {
		return nil, err
	}
	n.store, err = queue.Open(filepath.Join(cfg.DataDir, "state.db"), cfg.Site, queue.Options{Sites: sites, Rebuildable: hasSnap, Logger: log})
	if err != nil {
		return nil, err
	}
	if why := n.store.Discarded(); why != "" {
		log.Warn("state: " + why)
	}
	if !queue.BootIDKnown() {
		log.Warn("state: no boot ID (/proc/sys/kernel/random/boot_id unreadable, " + queue.BootIDEnv + " unset): every restart, even after a crash, discards state.db and Raft rebuilds it; under systemd with ProcSubset=pid set " + queue.BootIDEnv + "=%b in the unit")
	}
	if !n.store.Unsynced() {
		log.Info("state: every commit of state.db is synced until Raft holds a snapshot of it")
	}
	n.sealer = newSealer(cfg, site, n.store, log, n.metrics.reg)
	n.objectives = &objectives{local: cfg.mailboxes(), remote: n.remote}
	n.overdue = newOverdueWatch(n.store, n.objectives, log)
	// Raft before the link: Raft needs nothing of the link, and peers that
	// reach this node find it listening only once it can serve them (until
	// the state is running they get a retryable ErrStarting).
	n.raft, err = consensus.Open(n.raftConfig(n.keys))
	if err != nil {
		return nil, err
	}
	n.link, err = transport.New(n.linkConfig(n.keys))
	if err != nil {
		return nil, err
	}
	n.commit = newCommitter(committerDeps{
		node: cfg.Node, site: cfg.Site, timeout: cfg.SubmitTimeout.Duration,
		raft: n.raft, store: n.store, link: n.link, log: log, stop: n.ctx,
		check:     n.checkRelayed,
		submitted: func(k int) { n.metrics.submitted.Add(float64(k)) },
	})
	n.members = &membership{cfg: cfg, raft: n.raft, link: n.link, log: log, siteVersion: n.store.SiteVersion}
	n.linkHealth = &linkHealth{cfg: cfg, log: log, link: n.link, raft: n.raft, commit: n.commit,
		failures: n.metrics.linkTestFailures, rtt: n.metrics.linkTestRTT}
	n.admin = &admin{cfg: cfg, log: log, store: n.store, raft: n.raft, link: n.link,
		commit: n.commit, members: n.members, tests: &n.linkHealth.tests}
	n.linkHealth.transfer = n.admin.transferLeader
	n.audit = newAuditor(cfg, log, n.store, n.site, n.link, n.commit.propose, n.ctx)
	n.audit.isLeader = n.raft.IsLeader // audit_exchange.go: only the leader answers offers
	n.health = &health{cfg: cfg, life: &n.life, store: n.store, raft: n.raft, link: n.link,
		keys: n.keys, tests: &n.linkHealth.tests, audit: n.audit, seals: n.sealer,
		refusals: n.metrics.refusals, overdue: n.overdue, versions: n.versions}
	n.metrics.watch(watched{cfg: cfg, store: n.store, raft: n.raft, link: n.link, keys: n.keys, health: n.health})
	n.metrics.reg.MustRegister(&overdueCollector{w: n.overdue, local: cfg.mailboxes()}) // objectives.go
	n.sender = &sender{site: cfg.Site, node: cfg.Node, timeout: cfg.SubmitTimeout.Duration, store: n.store, seal: n.sealer,
		commit: n.commit, remote: n.remote, holds: cfg.holds, latency: n.metrics.submitLatency}
	n.api, err = newAPIServer(n)
	if err != nil {
		return nil, err
	}
	if n.mserv, err = startMetricsServer(n); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go n.leadership()
	n.wg.Go(func() { n.overdue.run(n.ctx) }) // objectives.go
	statePath := filepath.Join(cfg.DataDir, "state.db")
	bigState := func() bool {
		st, err := os.Stat(statePath)
		return err == nil && st.Size() >= releaseOftenFrom
	}
	n.wg.Go(func() { releaseMapped(n.ctx, log, n.store, releaseStateEvery, bigState) })
	n.wg.Go(func() { releaseMapped(n.ctx, log, n.raft, releaseLogEvery, nil) })
	if cfg.nodeConfig(cfg.Node).Join {
		n.wg.Go(func() { n.members.watchJoin(n.ctx) })
	}
	n.startSpools() // spool.go
	n.life.set(stateRunning)
	log.Info("node started", "site", cfg.Site, "socket", cfg.Socket, "data_dir", cfg.DataDir)
	reportUnconfiguredMailboxes(log, n.store.MailboxUnread(), cfg.mailboxes()) // mailbox_unconfigured.go
	x := newMailboxExchange(cfg, n.link, n.remote, log)                        // mailbox_exchange.go
	n.wg.Go(func() { x.run(n.ctx) })
	return n, nil
}

func (n *Node) linkConfig(b *pki.Keyring) transport.Config {
	var paths []transport.Path
	self := n.cfg.nodeConfig(n.cfg.Node)
	for _, p := range n.cfg.Paths {
		paths = append(paths, transport.Path{Name: p, Listen: self.Paths[p]})
	}
	// The intra-site link (relays, admin calls) runs over the site's LAN,
	// on the Raft host:port in UDP, so that it is independent of the
	// inter-site paths.
	paths = append(paths, transport.Path{Name: lanPath, Listen: self.Raft})
	var peers []transport.Peer
	for _, s := range n.cfg.Sites {
		for _, nc := range s.Nodes {
			if nc.Name == n.cfg.Node {
				continue
			}
			addrs := nc.Paths
			if s.Name == n.cfg.Site {
				addrs = map[string]string{lanPath: nc.Raft}
			}
			peers = append(peers, transport.Peer{Site: s.Name, Node: nc.Name, Addrs: addrs})
		}
	}
	return transport.Config{
		TLS:      b,
		Paths:    paths,
		Peers:    peers,
		Handler:  transport.HandlerFunc(n.handleBatch),
		Calls:    n.calls(),
		Logger:   n.log.With("component", "link"),
		MaxFrame: int(n.cfg.payloadLimit())*2 + n.cfg.Link.BatchBytes + (1 << 20),
		// A peer that stops answering (killed, cut off) is found by the
		// probes; QUIC itself gives up after this long without a packet.
		IdleTimeout:   3 * time.Second,
		ProbeInterval: n.cfg.Link.ProbeInterval.Duration,
		ProbeMisses:   n.cfg.Link.ProbeMisses,
		// A peer's request must arrive within the time its sender waits
		// for it (plus 1s per MiB); relayed admin calls run up to twice
		// submit_timeout. Batches in flight per connection: window × 4
		// precedences × 2 (messages and receipts), plus probes and calls.
		RequestTimeout: max(n.cfg.Link.SendTimeout.Duration, n.cfg.SubmitTimeout.Duration),
		HandlerTimeout: max(transport.DefaultHandlerTimeout, 3*n.cfg.SubmitTimeout.Duration),
		MaxStreams:     max(transport.DefaultMaxStreams, 8*n.cfg.Link.Window+64),

		OnProtocolMismatch: n.versions.hook, // versions.go
	}
}

func (n *Node) raftConfig(b *pki.Keyring) consensus.Config {
	site := n.cfg.siteConfig(n.cfg.Site)
	var peers []consensus.Peer
	byAddr := map[string]string{}
	members := map[string]bool{}
	for _, nc := range site.Nodes {
		if !nc.Join { // the founders bootstrap; joiners are added later
			peers = append(peers, consensus.Peer{ID: nc.Name, Addr: nc.Raft})
		}
		byAddr[nc.Raft] = nc.Name
		members[nc.Name] = true
	}
	allowSite := func(id pki.Identity) error {
		if id.Site != n.cfg.Site || !members[id.Node] {
			return fmt.Errorf("raft: %s is not a node of site %s", id, n.cfg.Site)
		}
		return nil
	}
	r := n.cfg.Raft
	return consensus.Config{
		ID:        n.cfg.Node,
		Addr:      n.cfg.nodeConfig(n.cfg.Node).Raft,
		Dir:       filepath.Join(n.cfg.DataDir, "raft"),
		Peers:     peers,
		Join:      n.cfg.nodeConfig(n.cfg.Node).Join,
		ServerTLS: b.ServerConfig(n.cfg.raftProtocols(), allowSite),
		ClientTLS: func(addr string) (*tls.Config, error) {
			node, ok := byAddr[addr]
			if !ok {
				return nil, fmt.Errorf("raft: no node of site %s has address %s", n.cfg.Site, addr)
			}
			return b.ClientConfig(n.cfg.raftProtocols(), pki.Identity{Site: n.cfg.Site, Node: node}), nil
		},
		OnProtocolMismatch: n.versions.hook, // versions.go
		FSM:                &fsm{store: n.store, commitTime: n.metrics.stateCommit, fail: n.fail},
		// In a goroutine of its own: Raft calls this while the snapshot
		// still holds its read transaction on state.db, which a running
		// Apply may be waiting for (to grow the file's map), and
		// Rebuildable waits for that Apply.
		SnapshotStored: func() {
			go func() {
				err := n.store.Rebuildable()
				switch {
				case err == nil, errors.Is(err, queue.ErrClosed):
				case errors.Is(err, queue.ErrWriteBack):
					n.fail(fmt.Errorf("state: %w", err))
				default:
					n.log.Error("state: cannot stop syncing state.db after a snapshot; it stays synced", "err", err)
				}
			}()
		},
		Logger:             n.log.With("component", "raft"),
		HeartbeatTimeout:   r.HeartbeatTimeout.Duration,
		ElectionTimeout:    r.ElectionTimeout.Duration,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout.Duration,
		SnapshotThreshold:  r.SnapshotThreshold,
		SnapshotInterval:   r.SnapshotInterval.Duration,
		ObserveLogWrite:    n.metrics.observeLogWrite,
	}
}

// leadership runs the leader-only work while this node leads.
func (n *Node) leadership() {
	defer n.wg.Done()
	var duties *leaderDuties
	defer func() { duties.stop() }()
	for {
		select {
		case <-n.ctx.Done():
			return
		case leading := <-n.raft.LeaderCh():
			if leading && duties == nil {
				n.log.Info("became leader: starting forwarder")
				duties = startLeaderDuties(n)
			} else if !leading && duties != nil {
				duties.stop()
				duties = nil
				n.log.Info("lost leadership: stopped forwarder")
			}
		}
	}
}

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Close stops the node: it stops admitting work (ErrStopping), then stops
// the API, leader duties and the link, waits up to a few seconds for work
// in progress, and closes Raft and the store. It is idempotent; called
// while Open runs, it waits for Open to return first.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		<-n.opened
		n.life.set(stateStopping)
		var errs []error
		if n.api != nil {
			errs = append(errs, n.api.close())
		}
		if n.mserv != nil {
			errs = append(errs, n.mserv.close())
		}
		n.cancel()
		if n.commit != nil {
			n.commit.close()
		}
		if n.link != nil {
			errs = append(errs, n.link.Close())
		}
		if !n.life.drain(5 * time.Second) {
			n.log.Warn("stopping with requests still in progress after 5s")
		}
		if n.raft != nil {
			errs = append(errs, n.raft.Close())
		}
		n.wg.Wait()
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(append([]error{n.failErr}, errs...)...)
		n.life.set(stateStopped)
		close(n.done)
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// fail stops the node because it can no longer work correctly (its
// store failed). Close then returns err.
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		n.log.Error("node failed, stopping", "err", err)
		n.failErr = err
		go n.Close()
	})
}

// applied is the result of one committed command and its log index, so a
// node can wait until its own copy of the state includes it.
type applied struct {
	Index  uint64       `json:"index"`
	Result queue.Result `json:"result"`
}

// propose commits cmd through the site's leader (committer.propose).
func (n *Node) propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	return n.commit.propose(ctx, cmd)
}

// proposeRYW is propose with read-your-writes (committer.proposeRYW).
func (n *Node) proposeRYW(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	return n.commit.proposeRYW(ctx, cmd)
}

// readBarrier waits until this node has applied the site's read index
// (committer.readBarrier).
func (n *Node) readBarrier(ctx context.Context) error { return n.commit.readBarrier(ctx) }

// fsm adapts the queue store to the consensus state machine.
type fsm struct {
	store      *queue.Store
	commitTime prometheus.Histogram // time to apply a batch of entries
	fail       func(error)          // stops the node (Node.fail)
}

var _ consensus.StateMachine = (*fsm)(nil)

func (f *fsm) Apply(entries []consensus.Entry) []any {
	in := make([]queue.Entry, len(entries))
	for i, e := range entries {
		in[i] = queue.Entry{Index: e.Index, Data: e.Data}
	}
	start := time.Now()
	res := f.store.Apply(in)
	f.commitTime.Observe(time.Since(start).Seconds())
	if err := f.store.Err(); err != nil {
		// The store refuses further commands rather than diverge from
		// the other nodes; stop so that systemd restarts us cleanly.
		f.fail(fmt.Errorf("state machine: %w", err))
	}
	out := make([]any, len(res))
	for i := range res {
		out[i] = applied{Index: entries[i].Index, Result: res[i]}
	}
	return out
}

func (f *fsm) Snapshot() (consensus.Snapshot, error) { return f.store.Snapshot() }

func (f *fsm) Restore(r io.Reader) error { return f.store.Restore(r) }
