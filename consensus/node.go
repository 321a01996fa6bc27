package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Transport and store settings.
const (
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	snapshotsRetain  = 2
	boltOpenTimeout  = 2 * time.Second // waiting for another process's lock on raft.db
	leaderChBuffer   = 16
)

// Node is one member of a site's Raft cluster. All methods are safe for
// concurrent use.
//
// Lifecycle:
//
//	Open ──> running (follower ⇄ candidate ⇄ leader) ──Close──> closed
//	  │         │  ▲
//	  │   storage full  space is back (reserve + 25%)
//	  │         ▼  │
//	  └──full──> standing by ──Close──> closed
//
// Standing by, the node has no Raft instance: it neither leads nor votes
// nor accepts entries, so a leader whose disk is full stops standing for
// election. Its listener stays; connections are closed after their
// handshake. When space is back it starts a new Raft instance on the same
// stores and catches up like a restarted node; the state machine keeps its
// state (a new instance replays only the entries it has not applied).
type Node struct {
	id     string
	cfg    Config
	rc     raft.Config // template for each Raft instance (NotifyCh set)
	log    *slog.Logger
	hlog   *hclogAdapter
	stream *streamLayer
	store  *raftboltdb.BoltStore
	pre    *prefiller // raft.db's
	logs   *guardedStore
	snaps  raft.SnapshotStore
	space  space
	sm     *fsm

	raft atomic.Pointer[raft.Raft] // latest instance, shut down while standing by; nil before the first

	mu       sync.Mutex
	cur      *instance // nil while standing by or closed
	full     error     // why this node stands by; nil while it takes part
	stopping bool      // standBy is stopping the instance
	closing  bool
	restored bool // an instance has started (and restored the state machine)

	notifyCh chan bool             // Raft's NotifyCh, read by watch
	obsCh    chan raft.Observation // leader observations, read by watch
	leaderCh chan bool             // LeaderCh, written by watch only

	stop      chan struct{} // closed by Close: ends watchSpace
	wg        sync.WaitGroup
	closed    chan struct{} // closed by Close after Raft has shut down
	watchDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// instance is one Raft instance with its transport.
type instance struct {
	raft     *raft.Raft
	trans    *raftTransport
	observer *raft.Observer
}

// Stats is a point-in-time view of a node's Raft progress.
type Stats struct {
	Term         uint64
	LastIndex    uint64 // last index in the log or the last snapshot
	CommitIndex  uint64
	AppliedIndex uint64 // last index handed to the state machine
	// LastContact is, on a follower or candidate, the time since the leader
	// was last heard from; 0 on the leader; -1 when never.
	LastContact time.Duration
}

// Open validates cfg, opens the stores in cfg.Dir (checking raft.db's
// consistency), starts the mTLS transport, bootstraps the cluster from
// cfg.Peers if Dir has no Raft state (unless cfg.Join), and starts Raft — or, when less than
// the storage reserve is free, stands by until there is room. On failure
// everything opened is closed again, including cfg.Listener.
func Open(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, err
	}
	rc, _ := cfg.raftConfig() // checked by Validate
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	hlog := newHclog(logger, "raft")
	rc.Logger = hlog

	// undo closes what has been opened so far when Open fails.
	var undo []func()
	fail := func(err error) (*Node, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	ln := cfg.Listener
	if ln != nil {
		undo = append(undo, func() { ln.Close() })
	}

	// Raft creates the snapshots directory 0755 and its files 0644: make
	// the directories 0700 first, and fix what an older version left.
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "snapshots"), dirMode); err != nil {
		return fail(fmt.Errorf("consensus: open: %w", err))
	}
	if err := restrictModes(cfg.Dir); err != nil {
		return fail(err)
	}
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	store, err := openBolt(dbPath)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { store.Close() })
	var wmu sync.Mutex
	reserve := cfg.StorageReserve
	if reserve == 0 {
		reserve = DefaultStorageReserve
	}
	sp := space{dir: cfg.Dir, reserve: reserve}
	pre, err := newPrefiller(dbPath, &wmu, sp, logger)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { pre.Close() })
	fsnaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetain, hlog.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("consensus: open snapshot store in %s: %w", cfg.Dir, err))
	}
	snaps := &snapshotStore{FileSnapshotStore: fsnaps, dir: filepath.Join(cfg.Dir, "snapshots"), stored: cfg.SnapshotStored}

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fail(fmt.Errorf("consensus: listen on %s: %w", cfg.Addr, err))
		}
		undo = append(undo, func() { ln.Close() })
	}
	stream := newStreamLayer(ln, cfg.advertise(), cfg.ServerTLS, cfg.ClientTLS, logger, handshakeTimeout, cfg.OnProtocolMismatch)
	undo = append(undo, func() { stream.Close() })

	n := &Node{
		id:        cfg.ID,
		cfg:       cfg,
		log:       logger,
		hlog:      hlog,
		stream:    stream,
		store:     store,
		snaps:     snaps,
		space:     sp,
		pre:       pre,
		sm:        &fsm{sm: cfg.FSM},
		notifyCh:  make(chan bool, 1),
		obsCh:     make(chan raft.Observation, 16),
		leaderCh:  make(chan bool, leaderChBuffer),
		stop:      make(chan struct{}),
		closed:    make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	n.logs = &guardedStore{BoltStore: store, space: n.space, full: n.standByAsync, observe: cfg.ObserveLogWrite, wmu: &wmu, pre: pre}
	rc.NotifyCh = n.notifyCh
	n.rc = *rc

	logs := newLogCache(n.logs, logCacheSize, logCacheBytes)
	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fail(fmt.Errorf("consensus: open: check existing state: %w", err))
	}
	if full := n.space.check(); full != nil {
		n.full = full
		logger.Error("consensus: storage full: standing by (not taking part in Raft) until space is freed", "err", full)
	} else {
		if !existing && cfg.Join {
			logger.Info("consensus: joining: no Raft state and not bootstrapping; waiting for the site's leader to add this node", "id", cfg.ID, "addr", cfg.advertise())
		} else if !existing {
			trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream.newView(), Timeout: transportTimeout})
			err := raft.BootstrapCluster(rc, logs, n.logs, snaps, trans, cfg.bootstrapConfiguration())
			trans.Close()
			if err != nil {
				return fail(n.space.classify(fmt.Errorf("consensus: open: bootstrap: %w", err)))
			}
			logger.Info("consensus: bootstrapped cluster", "peers", len(cfg.Peers))
		}
		n.mu.Lock() // the log store may report a full disk at once
		inst, err := n.newInstance()
		n.cur = inst
		n.mu.Unlock()
		if err != nil {
			return fail(err)
		}
	}
	n.pre.Start()
	go n.watch()
	n.wg.Add(1)
	go n.watchSpace()
	logger.Info("consensus: node started", "addr", cfg.advertise(), "dir", cfg.Dir, "existing_state", existing)
	return n, nil
}

// newInstance starts a Raft instance on the node's stores. The first one
// restores the state machine from the latest snapshot; later ones (after
// standing by) keep the state machine as it is, which is at or past that
// snapshot.
func (n *Node) newInstance() (*instance, error) {
	logs := newLogCache(n.logs, logCacheSize, logCacheBytes)
	trans := newRaftTransport(&raft.NetworkTransportConfig{
		Stream:  n.stream.newView(),
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  n.hlog.Named("net"),
	})
	rc := n.rc
	rc.NoSnapshotRestoreOnStart = n.restored
	r, err := raft.NewRaft(&rc, n.sm, logs, n.logs, n.snaps, trans)
	if err != nil {
		trans.Close()
		return nil, n.space.classify(fmt.Errorf("consensus: open: start raft: %w", err))
	}
	n.restored = true
	inst := &instance{raft: r, trans: trans}
	inst.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(inst.observer)
	n.raft.Store(r)
	return inst, nil
}

// stopInstance shuts a Raft instance down and closes its transport and
// connections.
func (n *Node) stopInstance(inst *instance) error {
	var errs []error
	if err := inst.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("consensus: raft shutdown: %w", err))
	}
	inst.raft.DeregisterObserver(inst.observer)
	inst.trans.CloseStreams()
	if err := inst.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("consensus: close transport: %w", err))
	}
	return errors.Join(errs...)
}

// standByAsync makes the node stand by because of err without blocking
// the caller (the log store, inside Raft).
func (n *Node) standByAsync(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing || n.full != nil {
		return
	}
	n.full = err
	n.stopping = true
	n.wg.Add(1)
	go n.standBy(err)
}

// standBy leaves the cluster because the disk is full: a leader first
// tries to hand over (Raft has usually stepped it down already, as its log
// write failed), then the Raft instance stops. watchSpace brings it back.
func (n *Node) standBy(err error) {
	defer n.wg.Done()
	n.log.Error("consensus: storage full: leaving the Raft cluster (no leading, no voting) until space is freed", "err", err)
	n.mu.Lock()
	inst := n.cur
	n.cur = nil
	n.mu.Unlock()
	if inst != nil {
		if inst.raft.State() == raft.Leader {
			if terr := inst.raft.LeadershipTransfer().Error(); terr != nil {
				n.log.Warn("consensus: storage full: leadership transfer failed; stopping anyway", "err", terr)
			}
		}
		if serr := n.stopInstance(inst); serr != nil {
			n.log.Warn("consensus: storage full: stopping raft", "err", serr)
		}
	}
	n.mu.Lock()
	n.stopping = false
	n.mu.Unlock()
}

// storageCheckInterval is how often a node checks its free space.
const storageCheckInterval = time.Second

// watchSpace checks the free space every storageCheckInterval: a node
// below the reserve stands by (even when nothing is written: a leader must
// not stay leader on a full disk), and a node standing by takes part again
// once there is room.
func (n *Node) watchSpace() {
	defer n.wg.Done()
	t := time.NewTicker(storageCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.StorageFull() == nil {
			if err := n.space.check(); err != nil {
				n.standByAsync(err)
			}
			continue
		}
		if !n.space.roomToResume() {
			continue
		}
		n.mu.Lock()
		if n.closing || n.stopping || n.full == nil {
			n.mu.Unlock()
			continue
		}
		inst, err := n.newInstance()
		if err != nil {
			n.mu.Unlock()
			n.log.Error("consensus: space is back but raft did not start; retrying", "err", err)
			continue
		}
		n.cur = inst
		n.full = nil
		n.mu.Unlock()
		free, _ := n.space.free()
		n.log.Info("consensus: space is back: taking part in Raft again", "dir", n.space.dir, "free_bytes", free)
	}
}

// StorageFull returns, while this node stands by because its disk is
// full, why (a *StorageError, matching ErrStorageFull); nil otherwise.
func (n *Node) StorageFull() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.full
}

// HandshakeRejections returns the number of Raft connections refused or
// closed before Raft saw them: failed or timed-out TLS handshakes and
// connections over the pending-handshake limits.
func (n *Node) HandshakeRejections() uint64 { return n.stream.Rejections() }

// Close shuts Raft down, then closes the transport (and every Raft
// connection) and the log store. It is idempotent; later calls return the
// first call's result. If this node was the leader, LeaderCh receives a
// final false.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		n.mu.Unlock()
		close(n.stop)
		n.wg.Wait() // a transition to or from standing by has finished
		n.mu.Lock()
		inst := n.cur
		n.cur = nil
		n.mu.Unlock()
		var errs []error
		if inst != nil {
			if err := n.stopInstance(inst); err != nil {
				errs = append(errs, fmt.Errorf("consensus: close: %w", err))
			}
		}
		close(n.closed)
		<-n.watchDone
		if err := n.stream.Close(); err != nil {
			errs = append(errs, fmt.Errorf("consensus: close: %w", err))
		}
		n.pre.Close()
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("consensus: close: log store: %w", err))
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("consensus: node closed")
	})
	return n.closeErr
}

func (n *Node) isClosed() bool {
	select {
	case <-n.closed:
		return true
	default:
		return false
	}
}

// running returns the Raft instance while it runs: nil before it first
// started, while the node stands by and once it is closed. A stopped
// instance's own State cannot be trusted to say Shutdown: hashicorp/raft's
// Shutdown sets it, but its main loop may still handle one more RPC and
// set it back (an AppendEntries makes it Follower) before it sees the
// shutdown and exits, leaving that state behind for good.
func (n *Node) running() *raft.Raft {
	r := n.raft.Load()
	if r == nil || n.isClosed() || n.StorageFull() != nil || r.State() == raft.Shutdown {
		return nil
	}
	return r
}

// IsLeader reports whether this node is the leader now (never while it
// stands by).
func (n *Node) IsLeader() bool {
	r := n.running()
	return r != nil && r.State() == raft.Leader
}

// Leader returns the current leader's ID and address, or "" when unknown
// (always while standing by).
func (n *Node) Leader() (id, addr string) {
	r := n.running()
	if r == nil {
		return "", ""
	}
	a, i := r.LeaderWithID()
	return string(i), string(a)
}

// State returns "leader", "follower", "candidate", "standby" (storage
// full, see [Node.StorageFull]; from the moment the node decides to stand
// by) or "shutdown".
func (n *Node) State() string {
	if !n.isClosed() && n.StorageFull() != nil {
		return "standby"
	}
	r := n.running()
	if r == nil {
		return "shutdown"
	}
	switch r.State() {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// Stats returns the node's Raft progress (zero before Raft first started).
func (n *Node) Stats() Stats {
	r := n.raft.Load()
	if r == nil {
		return Stats{LastContact: -1}
	}
	s := Stats{
		Term:         r.CurrentTerm(),
		LastIndex:    r.LastIndex(),
		CommitIndex:  r.CommitIndex(),
		AppliedIndex: r.AppliedIndex(),
		LastContact:  -1,
	}
	if r == n.running() && r.State() == raft.Leader {
		s.LastContact = 0
	} else if t := r.LastContact(); !t.IsZero() {
		s.LastContact = time.Since(t)
	}
	return s
}

// active returns the running Raft instance for an operation, or fails
// with ErrClosed or, while standing by, ErrStorageFull.
func (n *Node) active(op string) (*raft.Raft, error) {
	if n.isClosed() {
		return nil, &opError{op: op, kind: ErrClosed}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.full != nil {
		return nil, &opError{op: op, kind: ErrStorageFull, cause: n.full}
	}
	if n.cur == nil {
		return nil, &opError{op: op, kind: ErrClosed}
	}
	return n.cur.raft, nil
}

// term is the current term, 0 before Raft first started.
func (n *Node) term() uint64 {
	if r := n.raft.Load(); r != nil {
		return r.CurrentTerm()
	}
	return 0
}

// Servers returns the latest Raft configuration (possibly not yet
// committed). While this node hands leadership over, Raft refuses to read
// the configuration; Servers retries for up to two election timeouts.
func (n *Node) Servers() ([]Peer, error) {
	servers, err := n.latestServers("servers")
	if err != nil {
		return nil, err
	}
	peers := make([]Peer, 0, len(servers))
	for _, s := range servers {
		peers = append(peers, Peer{ID: string(s.ID), Addr: string(s.Address)})
	}
	return peers, nil
}
