package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Transport and store settings.
const (
	transportMaxPool = 3
	transportTimeout = 10 * time.Second
	snapshotsRetain  = 2
	logCacheSize     = 512
	boltOpenTimeout  = 2 * time.Second // waiting for another process's lock on raft.db
	leaderChBuffer   = 16
)

// Node is one running member of a site's Raft cluster. All methods are safe
// for concurrent use.
type Node struct {
	id    string
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	log   *slog.Logger

	notifyCh chan bool             // Raft's NotifyCh, read by watch
	obsCh    chan raft.Observation // leader observations, read by watch
	observer *raft.Observer
	leaderCh chan bool // LeaderCh, written by watch only

	closed    chan struct{} // closed by Close after Raft has shut down
	watchDone chan struct{}
	closeOnce sync.Once
	closeErr  error
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

// Open validates cfg, opens the stores in cfg.Dir, starts the mTLS
// transport, bootstraps the cluster from cfg.Peers if Dir has no Raft state,
// and starts Raft. On failure everything opened is closed again, including
// cfg.Listener.
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

	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fail(fmt.Errorf("consensus: open: %w", err))
	}
	dbPath := filepath.Join(cfg.Dir, "raft.db")
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: dbPath,
		// NoFreelistSync: without it bbolt rewrites the whole freelist on
		// every commit, and log compaction makes that list long.
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return fail(fmt.Errorf("consensus: open log store %s: %w", dbPath, err))
	}
	undo = append(undo, func() { store.Close() })
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		return fail(fmt.Errorf("consensus: open log cache: %w", err))
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetain, hlog.Named("snapshot"))
	if err != nil {
		return fail(fmt.Errorf("consensus: open snapshot store in %s: %w", cfg.Dir, err))
	}

	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fail(fmt.Errorf("consensus: listen on %s: %w", cfg.Addr, err))
		}
		undo = append(undo, func() { ln.Close() })
	}
	stream := newStreamLayer(ln, cfg.advertise(), cfg.ServerTLS, cfg.ClientTLS, logger, handshakeTimeout)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  hlog.Named("net"),
	})
	undo = append(undo, func() { trans.Close() })

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fail(fmt.Errorf("consensus: open: check existing state: %w", err))
	}
	if !existing {
		conf := cfg.bootstrapConfiguration()
		if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, conf); err != nil {
			return fail(fmt.Errorf("consensus: open: bootstrap: %w", err))
		}
		logger.Info("consensus: bootstrapped cluster", "peers", len(cfg.Peers))
	}

	n := &Node{
		id:        cfg.ID,
		trans:     trans,
		store:     store,
		log:       logger,
		notifyCh:  make(chan bool, 1),
		obsCh:     make(chan raft.Observation, 16),
		leaderCh:  make(chan bool, leaderChBuffer),
		closed:    make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	rc.NotifyCh = n.notifyCh
	r, err := raft.NewRaft(rc, &fsm{sm: cfg.FSM}, logs, store, snaps, trans)
	if err != nil {
		return fail(fmt.Errorf("consensus: open: start raft: %w", err))
	}
	n.raft = r
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	go n.watch()
	logger.Info("consensus: node started", "addr", cfg.advertise(), "dir", cfg.Dir, "existing_state", existing)
	return n, nil
}

// Close shuts Raft down, then closes the transport (and every Raft
// connection) and the log store. It is idempotent; later calls return the
// first call's result. If this node was the leader, LeaderCh receives a
// final false.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("consensus: close: raft shutdown: %w", err))
		}
		n.raft.DeregisterObserver(n.observer)
		close(n.closed)
		<-n.watchDone
		n.trans.CloseStreams()
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("consensus: close: transport: %w", err))
		}
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

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address, or "" when unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// State returns "leader", "follower", "candidate" or "shutdown".
func (n *Node) State() string {
	switch n.raft.State() {
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

// Stats returns the node's Raft progress.
func (n *Node) Stats() Stats {
	s := Stats{
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		LastContact:  -1,
	}
	if n.raft.State() == raft.Leader {
		s.LastContact = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		s.LastContact = time.Since(t)
	}
	return s
}

// Servers returns the latest Raft configuration (possibly not yet
// committed). While this node hands leadership over, Raft refuses to read
// the configuration; Servers retries for up to two election timeouts.
func (n *Node) Servers() ([]Peer, error) {
	deadline := time.Now().Add(2 * n.raft.ReloadableConfig().ElectionTimeout)
	for {
		f := n.raft.GetConfiguration()
		err := f.Error()
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, mapRaftError("servers", err)
		}
		servers := f.Configuration().Servers
		peers := make([]Peer, 0, len(servers))
		for _, s := range servers {
			peers = append(peers, Peer{ID: string(s.ID), Addr: string(s.Address)})
		}
		return peers, nil
	}
}
