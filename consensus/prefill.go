package consensus

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// Prefill sizes: raft.db is kept written with zeros beyond the pages
// bbolt uses, as many bytes as it uses but at least prefillMin and at
// most prefillAhead (a new node's small log gets a small lead, so that a
// site, or a test, starting many nodes does not write 16 MiB each), a
// prefillChunk at a time.
var (
	prefillMin   int64 = 1 << 20
	prefillAhead int64 = 16 << 20
	prefillChunk int64 = 1 << 20
)

// prefillLead is the lead kept beyond inUse bytes in use.
func prefillLead(inUse int64) int64 { return min(max(inUse, prefillMin), prefillAhead) }

// prefiller keeps raft.db written with zeros ahead of the pages bbolt
// uses, so that the log's writes land on blocks the filesystem has already
// allocated.
//
// bbolt grows its file with ftruncate, which leaves a hole; a page later
// written into the hole makes the filesystem allocate its block, and the
// fdatasync that follows must then commit the filesystem's journal as
// well. A log that only appends (as Raft's does until a snapshot lets it
// compact, and again whenever a backlog grows it) pays that on every
// write: on this product's appliances an 8 KiB write and fdatasync took
// 0.34-0.40 ms into a hole, 0.22 ms into fallocated (unwritten) blocks and
// 0.15 ms into blocks already written, with twice the kernel CPU for the
// hole (dd oflag=dsync, 2,000 writes, ext4). So the file is extended with
// written zeros (and synced) before bbolt needs the space: bbolt, finding
// the file long enough, never truncates it. etcd's WAL and PostgreSQL
// preallocate their logs for the same reason.
//
// bbolt reads nothing beyond its high-water mark (the meta page's page
// count), so zeros there are never read, whatever a crash leaves of them.
// The zeros are written only while mu (held around every write of
// raft.db, see guardedStore) is held, and only at the file's end: no
// bbolt transaction is writing then, and bbolt writes only within the
// file's size or after growing it, so no zero ever lands on a page bbolt
// wrote. The fdatasync after each chunk runs without mu.
//
// It stops filling when the filesystem holds less than the storage reserve
// plus twice prefillAhead (bbolt would take that space anyway, but the
// reserve is the node's) and after a failed write (logged once).
type prefiller struct {
	path  string
	f     *os.File
	mu    *sync.Mutex // held around every bbolt write of raft.db
	space space
	log   *slog.Logger
	zero  []byte

	fillMu sync.Mutex // one fill at a time
	failed bool       // under fillMu

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool // Start ran: Close waits for done
}

// newPrefiller opens raft.db at path for prefilling. Start runs it: once
// at once, then after each Kick. A failure to open the file is returned;
// nothing else is.
func newPrefiller(path string, mu *sync.Mutex, sp space, log *slog.Logger) (*prefiller, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("consensus: open %s to preallocate it: %w", path, err)
	}
	p := &prefiller{
		path: path, f: f, mu: mu, space: sp, log: log,
		zero: make([]byte, prefillChunk),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	return p, nil
}

// Start runs the filler until Close.
func (p *prefiller) Start() {
	p.started = true
	p.Kick()
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-p.kick:
				p.fill()
			}
		}
	}()
}

// Kick asks for a fill after a write; it never blocks.
func (p *prefiller) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Close stops the filler, waits for a fill under way to end (after
// Start) and closes its file. Call it once.
func (p *prefiller) Close() error {
	close(p.stop)
	if p.started {
		<-p.done
	}
	return p.f.Close()
}

// fill extends the file with zeros until prefillLead bytes lie beyond
// bbolt's high-water mark, one chunk per hold of mu, each chunk synced.
func (p *prefiller) fill() {
	p.fillMu.Lock()
	defer p.fillMu.Unlock()
	for !p.failed {
		select {
		case <-p.stop:
			return
		default:
		}
		if free, err := p.space.free(); err != nil || free < p.space.reserve+uint64(2*prefillAhead) {
			return
		}
		grew, err := p.chunk()
		if err != nil {
			p.failed = true
			p.log.Warn("consensus: cannot preallocate raft.db; its writes may be slower (nothing else changes)", "path", p.path, "err", err)
			return
		}
		if !grew {
			return
		}
		if err := p.f.Sync(); err != nil {
			p.failed = true
			p.log.Warn("consensus: cannot sync raft.db's preallocated space; no longer preallocating", "path", p.path, "err", err)
			return
		}
	}
}

// chunk writes one chunk of zeros at the file's end if less than
// prefillLead lies beyond bbolt's high-water mark, and reports whether it
// did.
func (p *prefiller) chunk() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size, inUse, err := boltcheck.Extent(p.f)
	if err != nil {
		return false, err
	}
	if size-inUse >= prefillLead(inUse) {
		return false, nil
	}
	if _, err := p.f.WriteAt(p.zero, size); err != nil {
		return false, err
	}
	return true, nil
}
