package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("queue: store closed")

// formatVersion is the layout version stored in the meta bucket. Version
// 1 lacked the finalized index (bucketFin); version 2 lacked checksums in
// message records and receipts and the duplicate inbound ID index
// (bucketInDups); version 3 lacked the evidence buckets
// (evidence_store.go), whose reference counts every writer must keep
// (an older version would purge messages without releasing their
// statements, so it must refuse the file); version 4 lacked the inbox by
// mailbox (mailbox.go), which every writer must keep; version 5 lacked
// the unread index (unread.go), which every writer must keep; version 6
// lacked the index and counts of held messages by mailbox (held.go),
// which every writer must keep, and stored held records with one
// checksum over header and payload (held_store.go). Open and Restore
// upgrade older files to formatVersion (see migrate).
//
// Version 8 is version 7 with the site version (siteversion.go) in the
// meta bucket. A new or upgraded file is of version 7, which a build that
// reads only up to 7 opens (a snapshot a node of this build sends to an
// older node during a rolling upgrade must open there); applying an
// OpSiteVersion that raises the site version to 2 or more moves the file
// to 8, which such a build refuses: the rollback boundary.
const (
	formatVersion    = 7                 // written for a new or upgraded file
	maxFormatVersion = siteVersionFormat // the newest this build reads: 8
	minFormatVersion = 1
)

// initialMmapSize is bbolt's initial memory map. bbolt grows the map by
// taking a lock that waits for every open read transaction, so a write
// that needs a bigger map would stall behind an open Snapshot (and Raft
// can wait on the applier while it holds that snapshot). A large map of
// address space, not memory, keeps that from happening below this size.
const initialMmapSize = 8 << 30

// openTimeout bounds the wait for the file lock held by another process.
const openTimeout = 5 * time.Second

// Bucket layout. Integers are big-endian; a channel key (chanKey) is the
// remote site's name, a 0 byte and the precedence byte, so byte order is
// site order then precedence order; a ref is seq(8) followed by a channel
// key.
var (
	bucketMeta = []byte("meta") // metaVersion, metaSite, metaApplied, metaInboxLast, metaUnread, metaSiteVersion, metaUpgrading

	bucketOut      = []byte("out")        // chanKey(dest) -> bucket{seq -> record}
	bucketOutChans = []byte("out_chans")  // chanKey(dest) -> last(8) acked(8)
	bucketOutIDs   = []byte("out_ids")    // id -> ref
	bucketOutKeys  = []byte("out_keys")   // idempotency key -> ref
	bucketExpiry   = []byte("out_expiry") // expiresAt(8) ref -> nil, queued messages only

	bucketIn      = []byte("in")       // chanKey(origin) -> bucket{seq -> record}
	bucketInChans = []byte("in_chans") // chanKey(origin) -> last(8)
	bucketInIDs   = []byte("in_ids")   // id -> ref (the first message with that ID)
	bucketInbox   = []byte("inbox")    // pos(8) -> ref, unread messages only
	bucketInDups  = []byte("in_dups")  // id 0 ref -> nil, later messages with an ID in in_ids (index.go)

	bucketRcptOut    = []byte("rcpt_out")    // origin -> bucket{rseq -> receipt}, receipts we owe
	bucketRcptQueues = []byte("rcpt_queues") // origin -> last(8) acked(8)
	bucketRcptIn     = []byte("rcpt_in")     // reader site -> last rseq applied(8)

	bucketFin = []byte("fin") // time(8) kind(1) ref -> nil, purgeable messages (purge.go)

	// bucketHeld, bucketHeldKeys, bucketHeldMbox, bucketHeldCount:
	// messages held for release (held.go)

	// bucketEvStmts, bucketEvCount, bucketEvRefs: evidence (evidence_store.go)

	allBuckets = [][]byte{
		bucketMeta,
		bucketOut, bucketOutChans, bucketOutIDs, bucketOutKeys, bucketExpiry,
		bucketIn, bucketInChans, bucketInIDs, bucketInbox, bucketInDups, bucketMboxInbox, bucketMboxUnread,
		bucketUnread, // unread.go
		bucketRcptOut, bucketRcptQueues, bucketRcptIn,
		bucketFin,
		bucketFence,
		bucketEvStmts, bucketEvCount, bucketEvRefs,
		bucketAudit, bucketAuditHashes, bucketAuditIDs, bucketAuditCPs, // audit_apply.go
		bucketHeld, bucketHeldKeys, bucketHeldMbox, bucketHeldCount, // held.go
	}

	metaVersion   = []byte("version")
	metaSite      = []byte("site")
	metaApplied   = []byte("applied")
	metaInboxLast = []byte("inbox_last")
	metaUnread    = []byte("unread")
)

// Store is one site's replicated queue state in a bbolt file. It is safe
// for concurrent use by one writer (Apply, Restore) and many readers.
type Store struct {
	path  string
	site  string
	sites map[string]bool // Options.Sites; nil: any

	corrupt corruption

	// applyMu serialises the writers: Apply, Restore and Close.
	applyMu sync.Mutex
	failed  atomic.Pointer[error] // sticky storage failure; set under applyMu

	// mu guards h. Readers and Apply hold it shared; Restore's swap and
	// Close hold it exclusively.
	mu sync.RWMutex
	h  *handle

	applied atomic.Uint64
	siteVer atomic.Uint64 // SiteVersion; set under applyMu

	log *slog.Logger // Options.Logger, never nil

	changedMu sync.Mutex
	changed   chan struct{}

	inbox inboxWatch // inboxwatch.go

	unsynced  atomic.Bool // commits skip fdatasync (unsynced.go); set under applyMu
	discarded string      // why Open discarded the file, or ""
	fromNew   bool        // unsynced since the file was new (unsynced.go)
}

// handle is one open bbolt database with the snapshots reading from it.
// A retired handle is closed when its last snapshot is released.
type handle struct {
	db *bolt.DB

	mu      sync.Mutex
	refs    int // open snapshots
	retired bool
}

func (h *handle) acquire() {
	h.mu.Lock()
	h.refs++
	h.mu.Unlock()
}

func (h *handle) release() {
	h.mu.Lock()
	h.refs--
	closeNow := h.retired && h.refs == 0
	h.mu.Unlock()
	if closeNow {
		_ = h.db.Close()
	}
}

// retire closes the database now, or when its last snapshot is released.
func (h *handle) retire() error {
	h.mu.Lock()
	h.retired = true
	closeNow := h.refs == 0
	h.mu.Unlock()
	if closeNow {
		return h.db.Close()
	}
	return nil
}

// Options are the settings of a Store besides its file and site.
type Options struct {
	// Sites are the sites of the deployment (the local one may be
	// included). An inbound batch (OpReceive) from any other origin is
	// refused when applied, so it must be the same list on every node of
	// the site. Nil accepts any origin.
	Sites []string
	// Rebuildable says that the caller's Raft holds a snapshot of this
	// state, so it can rebuild the file: commits are then not synced
	// (unsynced.go). A new file is always rebuildable; otherwise the
	// store syncs every commit until Store.Rebuildable is called.
	Rebuildable bool
	// Logger hears about the upgrade of a file of an older format (the
	// copy kept, progress; migrate.go), at Open and Restore. Nil: nothing
	// is logged.
	Logger *slog.Logger
}

// Open opens or creates the store at path (file mode 0600) for the local
// site named site: the origin of its outbound messages and the destination
// of its inbound ones. A file created for a different site is refused.
// The file's structure is checked first (bbolt's consistency check, about
// 0.1 s per 100 MB): a damaged file is an error wrapping [ErrCorrupt],
// "queue: open PATH: file is corrupt: ...", never a panic. A file of an
// older format is upgraded, after a copy of it is written beside it
// (see migrate); a file of a newer format, or of a site version above
// MaxSiteVersion (*NewerSiteVersionError), is refused.
func Open(path string, site string, opts Options) (*Store, error) {
	if err := validName(site); err != nil {
		return nil, fmt.Errorf("queue: open %s: site: %w", path, err)
	}
	var sites map[string]bool
	if opts.Sites != nil {
		sites = map[string]bool{}
		for _, name := range opts.Sites {
			if err := validName(name); err != nil {
				return nil, fmt.Errorf("queue: open %s: sites: %w", path, err)
			}
			sites[name] = true
		}
	}
	_, statErr := os.Stat(path)
	fromNew := errors.Is(statErr, fs.ErrNotExist)
	discarded, markedNew, err := checkUnsynced(path, opts.Rebuildable || fromNew)
	if err != nil {
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	fromNew = fromNew || markedNew || discarded != ""
	rebuildable := opts.Rebuildable || fromNew
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, st, err := openHandle(path, site, upgrader{log: log, backup: true})
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, site: site, sites: sites, h: h, log: log, changed: make(chan struct{}), discarded: discarded, fromNew: fromNew}
	s.applied.Store(st.applied)
	s.siteVer.Store(st.siteVersion)
	s.inbox.init(0)
	s.noteInbox(h.db, false)
	if rebuildable {
		err = s.goUnsynced()
	} else if _, serr := os.Stat(path + markerSuffix); serr == nil {
		// Written unsynced in this boot by a process that died, and
		// synced from now on: make what it wrote durable, then drop the
		// marker, which would otherwise refuse the file after a reboot.
		if err = h.db.Sync(); err == nil {
			err = removeMarker(path)
		}
	}
	if err != nil {
		_ = h.db.Close()
		return nil, fmt.Errorf("queue: open %s: %w", path, err)
	}
	return s, nil
}

func boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:         openTimeout,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	}
}

// handleState is what openHandle read of the state.
type handleState struct {
	applied     uint64
	siteVersion uint64
}

// openHandle opens the bbolt file, checks its structure, creates missing
// buckets, checks the format version and site, upgrades an older format
// and returns the applied index and site version.
func openHandle(path, site string, up upgrader) (*handle, handleState, error) {
	var st handleState
	db, err := openChecked(path)
	if err != nil {
		return nil, st, fmt.Errorf("queue: open %s: %w", path, err)
	}
	if err := migrate(db, path, site, up); err != nil {
		_ = db.Close()
		return nil, st, fmt.Errorf("queue: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := checkMeta(meta, site); err != nil {
			return err
		}
		st.applied, st.siteVersion = getU64(meta, metaApplied), storedSiteVersion(meta)
		if v := meta.Get(metaVersion); v != nil {
			return nil // formatVersion or later: migrate saw to it
		}
		if err := meta.Put(metaSite, []byte(site)); err != nil {
			return err
		}
		return meta.Put(metaVersion, u64(formatVersion))
	})
	if err != nil {
		_ = db.Close()
		return nil, st, fmt.Errorf("queue: open %s: %w", path, err)
	}
	return &handle{db: db}, st, nil
}

// checkMeta verifies the stored format version, site and site version,
// if any.
func checkMeta(meta *bolt.Bucket, site string) error {
	v := meta.Get(metaVersion)
	if v == nil {
		return nil
	}
	if len(v) != 8 || be.Uint64(v) < minFormatVersion {
		return fmt.Errorf("unsupported format version %x (want %d to %d)", v, minFormatVersion, maxFormatVersion)
	}
	if n := be.Uint64(v); n > maxFormatVersion {
		return fmt.Errorf("state file format %d is newer than this build reads (%d to %d): run a newer build", n, minFormatVersion, maxFormatVersion)
	}
	if got := string(meta.Get(metaSite)); got != site {
		return fmt.Errorf("state belongs to site %q, not %q", got, site)
	}
	if sv := storedSiteVersion(meta); sv > MaxSiteVersion {
		return fmt.Errorf("state file: %w", &NewerSiteVersionError{Version: sv})
	}
	return nil
}

// Close closes the store. It waits for a running Apply or Restore; open
// snapshots stay readable and the file is closed when the last is
// released. Close is idempotent.
func (s *Store) Close() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	h := s.h
	s.h = nil
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	if err := s.syncAndClear(h); err != nil {
		_ = h.retire()
		return fmt.Errorf("queue: close: sync %s: %w", s.path, err)
	}
	if err := h.retire(); err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

// Site returns the local site name given to Open.
func (s *Store) Site() string { return s.site }

// AppliedIndex returns the highest Entry.Index applied (0 for a new store).
func (s *Store) AppliedIndex() uint64 { return s.applied.Load() }

// Err returns the storage failure that stopped Apply, or nil. A failed
// store keeps serving reads of its last committed state; the node should
// stop and restart (Raft then replays the lost entries).
func (s *Store) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Changed returns a channel that is closed after the next Apply or Restore
// that commits. Every waiter of that round is woken; call Changed again
// after each wake, before reading, so that no change is missed.
func (s *Store) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

// view runs fn in a read transaction on the current database. A panic
// (bbolt reading a page damaged after Open's check) is returned as an
// error wrapping ErrCorrupt.
func (s *Store) view(fn func(tx *bolt.Tx) error) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return ErrClosed
	}
	defer func() {
		if p := recover(); p != nil {
			err = s.note(&CorruptError{File: s.path, Record: "(reading)", Reason: fmt.Sprintf("panic: %v", p)})
		}
	}()
	return s.h.db.View(fn)
}
