package queue

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A backup file is the store's state as of one read transaction, framed so
// that a truncated or altered copy is recognised before it is used:
//
//	hotline-backup 1\n                       magic and format version
//	{"format":1,"site":...,"length":N}\n     BackupHeader, JSON, one line
//	N bytes                                  the bbolt file (Snapshot.WriteTo)
//	sha256 <64 hex digits>\n                 SHA-256 of everything before it
//
// Restoring one starts a new Raft cluster for the whole site (see
// RestoreBackup). The restored state does not know what the site did
// after the backup, so it is fenced until the other sites have told it
// where they are (see the fence bucket below).

// BackupFormat is the version of the backup file format written.
const BackupFormat = 1

const (
	backupMagic     = "hotline-backup 1\n"
	backupTrailer   = "sha256 "
	trailerLen      = len(backupTrailer) + 2*sha256.Size + 1
	maxBackupHeader = 4096
)

// restoreInboxGap is added to the inbox position counter of a restored
// state: positions handed out after the backup (and seen by clients) are
// lost with it, and positions must never be reused.
const restoreInboxGap = 1 << 40

// ErrBadBackup is wrapped by every error about a backup file that is not
// usable: not a backup, another format, truncated, altered.
var ErrBadBackup = errors.New("not a usable backup")

// ErrResyncing is the error text prefix (SubmitResult.Err) of a submit to
// a destination that this site, restored from a backup, has not been in
// touch with yet: the sequence numbers it may already have accepted are
// unknown, so none is given out. Retrying later is safe.
var ErrResyncing = errors.New("queue: restored from a backup and not yet resynchronised with the destination site")

// BackupHeader describes a backup: the site and node it was taken from,
// the Raft index its state had applied, when, and the length of the state.
type BackupHeader struct {
	Format  int       `json:"format"`
	Site    string    `json:"site"`
	Node    string    `json:"node"`
	Applied uint64    `json:"applied"`
	Time    time.Time `json:"time"`
	Length  int64     `json:"length"`
	// Sum is the file's SHA-256 (hex), set by ReadBackup; not in the header.
	Sum string `json:"-"`
}

// Backup is a backup being taken: a Snapshot and its header. Release it.
type Backup struct {
	Header BackupHeader
	sn     *Snapshot
	prefix []byte
}

// Backup starts a backup of the committed state (one read transaction),
// taken on node at now. The caller writes it with WriteTo and must
// Release it.
func (s *Store) Backup(node string, now time.Time) (*Backup, error) {
	sn, err := s.Snapshot()
	if err != nil {
		return nil, err
	}
	sn.mu.Lock()
	size := sn.tx.Size()
	sn.mu.Unlock()
	h := BackupHeader{Format: BackupFormat, Site: s.site, Node: node, Applied: sn.applied, Time: now.UTC(), Length: size}
	js, err := json.Marshal(h)
	if err != nil {
		sn.Release()
		return nil, fmt.Errorf("queue: backup: %w", err)
	}
	prefix := append(append([]byte(backupMagic), js...), '\n')
	return &Backup{Header: h, sn: sn, prefix: prefix}, nil
}

// Size is the number of bytes WriteTo writes.
func (b *Backup) Size() int64 { return int64(len(b.prefix)) + b.Header.Length + int64(trailerLen) }

// WriteTo writes the backup file to w.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	if _, err := cw.Write(b.prefix); err != nil {
		return cw.n, fmt.Errorf("queue: backup: %w", err)
	}
	n, err := b.sn.WriteTo(cw)
	if err != nil {
		return cw.n, fmt.Errorf("queue: backup: %w", err)
	}
	if n != b.Header.Length {
		return cw.n, fmt.Errorf("queue: backup: state was %d bytes, expected %d", n, b.Header.Length)
	}
	trailer := backupTrailer + hex.EncodeToString(h.Sum(nil)) + "\n"
	m, err := io.WriteString(w, trailer)
	if err != nil {
		return cw.n + int64(m), fmt.Errorf("queue: backup: %w", err)
	}
	return cw.n + int64(m), nil
}

// Release ends the backup's read transaction; idempotent.
func (b *Backup) Release() { b.sn.Release() }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadBackup reads a backup file from r, copies its state (the bbolt file)
// to content and checks it: the magic, the header, the length and the
// SHA-256 trailer, and that nothing follows. Content receives bytes before
// they are verified: use it only when ReadBackup returns nil. Errors wrap
// ErrBadBackup and say what was wrong.
func ReadBackup(r io.Reader, content io.Writer) (BackupHeader, error) {
	var h BackupHeader
	br := bufio.NewReaderSize(r, 64<<10)
	sum := sha256.New()
	magic := make([]byte, len(backupMagic))
	if n, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return h, fmt.Errorf("%w: it does not start with %q (starts with %q)", ErrBadBackup, backupMagic, magic[:n])
	}
	sum.Write(magic)
	line, err := readLine(br, maxBackupHeader)
	if err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	sum.Write(line)
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	switch {
	case h.Format != BackupFormat:
		return h, fmt.Errorf("%w: format %d, this version reads format %d", ErrBadBackup, h.Format, BackupFormat)
	case validName(h.Site) != nil:
		return h, fmt.Errorf("%w: header names no valid site (%q)", ErrBadBackup, h.Site)
	case h.Length <= 0:
		return h, fmt.Errorf("%w: header gives a state length of %d bytes", ErrBadBackup, h.Length)
	}
	n, err := io.CopyN(io.MultiWriter(content, sum), br, h.Length)
	if err == io.EOF {
		return h, fmt.Errorf("%w: truncated: the state ends after %d of %d bytes", ErrBadBackup, n, h.Length)
	}
	if err != nil {
		return h, fmt.Errorf("reading backup: %w", err)
	}
	tr := make([]byte, trailerLen)
	if m, err := io.ReadFull(br, tr); err != nil {
		return h, fmt.Errorf("%w: truncated: the checksum trailer has %d of %d bytes", ErrBadBackup, m, trailerLen)
	}
	want := backupTrailer + hex.EncodeToString(sum.Sum(nil)) + "\n"
	if string(tr) != want {
		return h, fmt.Errorf("%w: checksum mismatch: the file was altered or damaged (trailer %q, content hashes to %q)",
			ErrBadBackup, bytes.TrimSpace(tr), want[len(backupTrailer):len(want)-1])
	}
	h.Sum = want[len(backupTrailer) : len(want)-1]
	if extra, _ := io.Copy(io.Discard, io.LimitReader(br, 1<<20)); extra > 0 {
		return h, fmt.Errorf("%w: %d bytes or more after the checksum trailer", ErrBadBackup, extra)
	}
	return h, nil
}

// readLine reads up to and including '\n', at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for len(line) <= max {
		b, err := br.ReadByte()
		if err != nil {
			return nil, errors.New("truncated")
		}
		line = append(line, b)
		if b == '\n' {
			return line, nil
		}
	}
	return nil, fmt.Errorf("longer than %d bytes", max)
}

// RestoreBackup creates the store file path for site from the backup file
// from, ready for a new Raft cluster of the site: it verifies the backup
// (ReadBackup, then the state's structure, format and site), and prepares
// the state for a log that starts again at index 1:
//
//   - the applied index is 0;
//   - inbox positions continue 2⁴⁰ higher, never reusing one a client
//     saw after the backup;
//   - every outbound channel and receipt queue to each site of remotes,
//     and the receipts from it, are fenced (see the fence bucket):
//     submits to a fenced destination are refused with ErrResyncing until
//     the forwarder has learned that site's last sequence number.
//
// path must not exist. The file is written beside it, synced and renamed.
func RestoreBackup(from, path, site string, remotes []string) (BackupHeader, error) {
	var h BackupHeader
	if _, err := os.Lstat(path); err == nil {
		return h, fmt.Errorf("queue: restore: %s already exists: move the node's old data aside first", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	for _, r := range remotes {
		if err := validName(r); err != nil || r == site {
			return h, fmt.Errorf("queue: restore: remote site %q: not a valid other site", r)
		}
	}
	in, err := os.Open(from)
	if err != nil {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	tmp, err := writeTemp(path, ".restore-", func(f *os.File) (err error) {
		h, err = ReadBackup(in, f)
		return err
	})
	if err != nil {
		return h, fmt.Errorf("queue: restore from %s: %w", from, err)
	}
	defer os.Remove(tmp) // nothing left after the rename
	if h.Site != site {
		return h, fmt.Errorf("queue: restore from %s: %w: it is a backup of site %q, this node is of site %q", from, ErrBadBackup, h.Site, site)
	}
	if err := checkSnapshot(tmp, site); err != nil {
		return h, fmt.Errorf("queue: restore from %s: %w: %w", from, ErrBadBackup, err)
	}
	if err := prepareRestored(tmp, site, remotes); err != nil {
		return h, fmt.Errorf("queue: restore from %s: %w", from, err)
	}
	// A marker left by the file moved aside is not about this one, which
	// is synced (unsynced.go).
	if err := os.Remove(path + markerSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return h, fmt.Errorf("queue: restore: %w", err)
	}
	return h, nil
}

// prepareRestored opens the restored file (upgrading its format if need
// be) and resets it for a new Raft log; see RestoreBackup.
func prepareRestored(path, site string, remotes []string) error {
	// No copy of an older format's file before upgrading it: the backup
	// file it came from is kept by the operator.
	hd, _, err := openHandle(path, site, upgrader{log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer hd.db.Close()
	return hd.db.Update(func(tx *bolt.Tx) error {
		meta, fence := tx.Bucket(bucketMeta), tx.Bucket(bucketFence)
		if err := meta.Put(metaApplied, u64(0)); err != nil {
			return err
		}
		if err := meta.Put(metaInboxLast, u64(getU64(meta, metaInboxLast)+restoreInboxGap)); err != nil {
			return err
		}
		for _, r := range remotes {
			for _, p := range Precedences {
				if err := fence.Put(fenceKey(fenceOut, chanKey(r, p)), nil); err != nil {
					return err
				}
			}
			last, _ := getPair(tx.Bucket(bucketRcptQueues).Get([]byte(r)))
			if err := fence.Put(fenceKey(fenceRcptOut, []byte(r)), u64(last)); err != nil {
				return err
			}
			if err := fence.Put(fenceKey(fenceRcptIn, []byte(r)), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// The fence bucket holds what a restored state does not know yet, each
// cleared by the first word from the other site:
//
//   - fenceOut + chanKey(dest): the destination's last sequence of that
//     channel may be above ours (messages sent after the backup). Submits
//     to it are refused (ErrResyncing); the forwarder asks the destination
//     (an empty batch) and proposes OpDelivered with its answer, which
//     moves the channel's last and acked up to it and clears the fence.
//   - fenceRcptOut + site -> R0(8): the receipt queue to site had last R0
//     in the backup; site may have applied more. Receipts are still queued
//     (numbered above R0) but not sent; OpReceiptsAcked with site's last L
//     drops those site already has and, if L > R0, renumbers the newer
//     ones to follow L.
//   - fenceRcptIn + site: site's receipts that we applied after the
//     backup are gone and site will not resend them (it dropped them when
//     we acknowledged them): the first batch of receipts from site is
//     applied from its first RSeq, whatever our last was.
//
// Messages from the other sites need no fence: their forwarders notice
// that we acknowledge less than before and resend from our last
// (Store.Resend), from what they keep for the retention period.
var bucketFence = []byte("fence")

const (
	fenceOut     = 'o'
	fenceRcptOut = 'r'
	fenceRcptIn  = 'i'
)

func fenceKey(kind byte, k []byte) []byte { return append([]byte{kind}, k...) }

// fenced reports whether key is fenced in the applier's state.
func (a *applier) fenced(kind byte, k []byte) bool {
	return a.fence.Get(fenceKey(kind, k)) != nil
}

// resyncOut applies the destination's last sequence upTo to a fenced
// outbound channel ck (after the usual cumulative ack): if the
// destination is ahead, the numbers up to upTo are taken, by messages we
// sent after the backup. It clears the fence.
func (a *applier) resyncOut(ck []byte, upTo uint64) error {
	key := fenceKey(fenceOut, ck)
	if a.fence.Get(key) == nil {
		return nil
	}
	if last, _ := getPair(a.outChans.Get(ck)); upTo > last {
		if err := a.outChans.Put(ck, pair(upTo, upTo)); err != nil {
			return err
		}
	}
	return a.fence.Delete(key)
}

// resyncReceipts applies origin's last applied RSeq l to the fenced
// receipt queue to origin; see the fence bucket.
func (a *applier) resyncReceipts(origin string, l uint64) error {
	ok := []byte(origin)
	key := fenceKey(fenceRcptOut, ok)
	r0 := getU64(a.fence, key)
	last, acked := getPair(a.rcptQueues.Get(ok))
	q := a.rcptOut.Bucket(ok)
	drop := min(l, r0)
	if q != nil {
		for rseq := acked + 1; rseq <= drop; rseq++ {
			if err := q.Delete(u64(rseq)); err != nil {
				return err
			}
		}
	}
	acked = max(acked, drop)
	if l > r0 {
		shift := l - r0
		for rseq := last; rseq > r0 && q != nil; rseq-- {
			v := q.Get(u64(rseq))
			if v == nil {
				return corruptf(receiptName(ok, rseq), "missing below the queue's last %d", last)
			}
			rc, err := decodeReceipt(ok, rseq, v)
			if err != nil {
				return err
			}
			rc.RSeq = rseq + shift
			if err := q.Delete(u64(rseq)); err != nil {
				return err
			}
			if err := q.Put(u64(rc.RSeq), encodeReceipt(ok, rc)); err != nil {
				return err
			}
		}
		last, acked = last+shift, l
	}
	if last > 0 {
		if err := a.rcptQueues.Put(ok, pair(last, acked)); err != nil {
			return err
		}
	}
	return a.fence.Delete(key)
}

// jumpReceipts clears the fence on receipts from site and, if the batch
// starts above last+1, returns first-1 as the new last; see the fence
// bucket.
func (a *applier) jumpReceipts(from []byte, last, first uint64) (uint64, error) {
	key := fenceKey(fenceRcptIn, from)
	if a.fence.Get(key) == nil {
		return last, nil
	}
	if err := a.fence.Delete(key); err != nil {
		return 0, err
	}
	return max(last, first-1), nil
}

// Fences lists what a state restored from a backup still waits to learn:
// the outbound channels (by destination) and the receipt queues whose
// fence is up. Both are nil on a state that was never restored, or once
// every other site has been heard from.
type Fences struct {
	Out      []Channel `json:"out,omitempty"`
	Receipts []string  `json:"receipts,omitempty"` // receipt queues to these sites
}

// Fenced returns the fences still up (nil when none is).
func (s *Store) Fenced() *Fences {
	var f Fences
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFence).ForEach(func(k, _ []byte) error {
			switch {
			case len(k) < 2:
			case k[0] == fenceOut:
				if dest, p, ok := parseChanKey(k[1:]); ok {
					f.Out = append(f.Out, Channel{Origin: s.site, Dest: dest, Precedence: p})
				}
			case k[0] == fenceRcptOut:
				f.Receipts = append(f.Receipts, string(k[1:]))
			}
			return nil
		})
	})
	if f.Out == nil && f.Receipts == nil {
		return nil
	}
	return &f
}

// OutFenced reports whether channel (Site(), dest, p) is fenced.
func (s *Store) OutFenced(dest string, p Precedence) bool {
	return s.hasFence(fenceKey(fenceOut, chanKey(dest, p)))
}

// ReceiptsFenced reports whether the receipt queue to origin is fenced.
func (s *Store) ReceiptsFenced(origin string) bool {
	return s.hasFence(fenceKey(fenceRcptOut, []byte(origin)))
}

func (s *Store) hasFence(key []byte) bool {
	var up bool
	_ = s.view(func(tx *bolt.Tx) error {
		up = tx.Bucket(bucketFence).Get(key) != nil
		return nil
	})
	return up
}

// Resend is Pending for a destination that lost messages it had
// acknowledged (it was restored from a backup) and asks again from after:
// messages it still keeps are returned as Pending does; those the
// retention has already purged (at or below the channel's Acked) come as
// tombstones with ID "purged-SEQ", so the destination's sequence stays
// gap-free and it can go on.
func (s *Store) Resend(dest string, p Precedence, after uint64, maxMsgs, maxBytes int) ([]Message, error) {
	msgs, err := s.Pending(dest, p, after, maxMsgs, maxBytes)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	ck := chanKey(dest, p)
	var end uint64 // tombstones for after+1..end
	err = s.view(func(tx *bolt.Tx) error {
		_, acked := getPair(tx.Bucket(bucketOutChans).Get(ck))
		if after >= acked {
			return nil
		}
		end = acked
		if b := tx.Bucket(bucketOut).Bucket(ck); b != nil {
			if k, _ := b.Cursor().Seek(u64(after + 1)); k != nil && be.Uint64(k)-1 < end {
				end = be.Uint64(k) - 1
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: resend %s: %w", Channel{s.site, dest, p}, err)
	}
	if maxMsgs > 0 && end > after+uint64(maxMsgs) {
		end = after + uint64(maxMsgs)
	}
	for seq := after + 1; seq <= end; seq++ {
		msgs = append(msgs, Message{ID: fmt.Sprintf("purged-%d", seq), Origin: s.site, Dest: dest, Precedence: p, Seq: seq, Flags: FlagTombstone})
	}
	return msgs, nil
}
