package boltcheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged bbolt file can make bbolt panic or fault in a goroutine of
// its own while it opens the file (with NoFreelistSync it walks every
// page to rebuild the free list) or checks it: neither can be recovered.
// So before bbolt maps the file, Check walks the page tree with plain
// reads and refuses a file whose structure bbolt could not walk safely:
// page ids beyond the high-water mark, pages referenced twice, unknown
// page types, elements, keys or values outside their page. Then Open lets
// bbolt open the file and runs its own consistency check (tx.Check).
//
// The walk reads bbolt's documented on-disk layout (little-endian, as on
// every platform we build for):
//
//	page     = id(8) flags(2) count(2) overflow(4) data
//	meta     = magic(4) version(4) page_size(4) flags(4) root(16)
//	           freelist(8) pgid(8) txid(8) checksum(8), at offset 16 of
//	           pages 0 and 1; checksum is FNV-64a of the bytes before it
//	branch   = count elements of pos(4) ksize(4) pgid(8)
//	leaf     = count elements of flags(4) pos(4) ksize(4) vsize(4); flag
//	           1 marks a bucket whose value is root(8) sequence(8) and,
//	           when root is 0, an inline leaf page
//
// an element's pos is relative to the element itself.

var le = binary.LittleEndian

const (
	pageHeader    = 16
	elemSize      = 16
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	flagBranch    = 0x01
	flagLeaf      = 0x02
	flagFreelist  = 0x10
	bucketLeaf    = 0x01
	noFreelist    = ^uint64(0)
	maxTreeDepth  = 64
	metaChecksum  = 56 // offset of the checksum in a meta
	minPageSize   = 512
	maxPageSize   = 1 << 20
	freelistCount = 0xFFFF
)

// CorruptError is a damaged file: its structure, or bbolt's check of it.
type CorruptError struct{ Reason string }

func (e *CorruptError) Error() string { return "file is corrupt: " + e.Reason }

func corruptFile(format string, args ...any) error {
	return &CorruptError{Reason: fmt.Sprintf(format, args...)}
}

// Open opens the bbolt file at path with opts after Check, and runs
// bbolt's consistency check on it. A damaged file is a *CorruptError; a
// panic inside bbolt on this goroutine is reported as one, never raised.
// A file locked by another process gives bbolt's ErrTimeout, wrapped.
// An existing file whose permissions allow more than mode (left by an
// older version, or by hand) is narrowed to mode.
func Open(path string, mode os.FileMode, opts *bolt.Options) (db *bolt.DB, err error) {
	if err := Check(path); err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, corruptFile("bbolt: %v", p)
		}
	}()
	db, err = bolt.Open(path, mode, opts)
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("%w (is another process using it?)", err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, corruptFile("%v", err)
	case err != nil:
		return nil, err
	}
	var errs []error
	n := 0
	_ = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() { // drained to the end: Check's goroutine waits for us
			if n++; n <= 3 {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if n > 0 {
		_ = db.Close()
		more := ""
		if n > len(errs) {
			more = fmt.Sprintf(" (and %d more)", n-len(errs))
		}
		return nil, corruptFile("%v%s", errors.Join(errs...), more)
	}
	if err := narrow(path, mode); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// narrow takes from the file at path every permission mode does not give.
func narrow(path string, mode os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&^mode.Perm() != 0 {
		if err := os.Chmod(path, perm&mode.Perm()); err != nil {
			return fmt.Errorf("narrow the mode of %s to %v: %w", path, perm&mode.Perm(), err)
		}
	}
	return nil
}

// Check walks the file's pages; see above. A missing or empty file is
// fine (bbolt creates it). A damaged file is a *CorruptError.
func Check(path string) (err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
	}
	defer func() {
		if p := recover(); p != nil { // a bug in the walk, not in the file
			err = corruptFile("walking the pages: %v", p)
		}
	}()
	w := &walker{f: f, size: st.Size(), seen: map[uint64]bool{}}
	root, freelist, err := w.meta()
	if err != nil {
		return err
	}
	if freelist != noFreelist {
		if err := w.freelist(freelist); err != nil {
			return err
		}
	}
	_, err = w.tree(root, 0, nil, nil)
	return err
}

type walker struct {
	f    *os.File
	size int64
	ps   uint64 // page size
	hwm  uint64 // pages in use
	seen map[uint64]bool
}

// meta picks the valid meta page with the highest txid, as bbolt does.
func (w *walker) meta() (root, freelist uint64, err error) {
	first := make([]byte, pageHeader+metaChecksum+8)
	if _, err := w.f.ReadAt(first, 0); err != nil {
		if !errors.Is(err, io.EOF) {
			return 0, 0, err // I/O, not damage
		}
		return 0, 0, corruptFile("file of %d bytes has no meta page", w.size)
	}
	var best []byte
	m0, ok0 := validMeta(first[pageHeader:])
	ps := uint64(os.Getpagesize())
	if ok0 {
		best, ps = m0, uint64(le.Uint32(m0[8:]))
	}
	second := make([]byte, len(first))
	if _, err := w.f.ReadAt(second, int64(ps)); err == nil {
		if m1, ok := validMeta(second[pageHeader:]); ok && uint64(le.Uint32(m1[8:])) == ps &&
			(best == nil || le.Uint64(m1[48:]) > le.Uint64(best[48:])) {
			best = m1
		}
	}
	if best == nil {
		return 0, 0, corruptFile("no valid meta page")
	}
	w.ps = uint64(le.Uint32(best[8:]))
	w.hwm = le.Uint64(best[40:])
	if w.ps < minPageSize || w.ps > maxPageSize || w.hwm < 2 || w.hwm > uint64(w.size)/w.ps {
		return 0, 0, corruptFile("meta page: page size %d and %d pages do not fit a file of %d bytes", w.ps, w.hwm, w.size)
	}
	return le.Uint64(best[16:]), le.Uint64(best[32:]), nil
}

func validMeta(m []byte) ([]byte, bool) {
	h := fnv.New64a()
	h.Write(m[:metaChecksum])
	ok := le.Uint32(m) == boltMagic && le.Uint32(m[4:]) == boltVersion && h.Sum64() == le.Uint64(m[metaChecksum:])
	return m, ok
}

// page reads page id and its overflow pages, once.
func (w *walker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, corruptFile("page id %d out of range [2, %d)", id, w.hwm)
	}
	hdr := make([]byte, pageHeader)
	if _, err := w.f.ReadAt(hdr, int64(id*w.ps)); err != nil {
		if !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("page %d: %w", id, err) // I/O, not damage
		}
		return nil, corruptFile("page %d: %v", id, err)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if le.Uint64(hdr) != id {
		return nil, corruptFile("page %d: header says page %d", id, le.Uint64(hdr))
	}
	if id+overflow >= w.hwm {
		return nil, corruptFile("page %d: %d overflow pages beyond the %d in use", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, corruptFile("page %d: referenced twice", i)
		}
		w.seen[i] = true
	}
	p := make([]byte, (overflow+1)*w.ps)
	if _, err := io.ReadFull(io.NewSectionReader(w.f, int64(id*w.ps), int64(len(p))), p); err != nil {
		return nil, corruptFile("page %d: %v", id, err)
	}
	return p, nil
}

func (w *walker) freelist(id uint64) error {
	p, err := w.page(id)
	if err != nil {
		return err
	}
	if le.Uint16(p[8:]) != flagFreelist {
		return corruptFile("page %d: freelist page of type %#x", id, le.Uint16(p[8:]))
	}
	n, idx := uint64(le.Uint16(p[10:])), uint64(0)
	if n == freelistCount {
		if len(p) < pageHeader+8 {
			return corruptFile("page %d: short freelist", id)
		}
		n, idx = le.Uint64(p[pageHeader:]), 1
	}
	if n > uint64(len(p)) || pageHeader+(idx+n)*8 > uint64(len(p)) {
		return corruptFile("page %d: freelist of %d ids beyond its page", id, n)
	}
	return nil
}

// tree walks the B+tree of a bucket rooted at page id, whose keys must
// be in [lo, hi) (nil: unbounded) and ascending, as bbolt's check wants
// (it reports a violation from the goroutine that Open cannot recover).
// It returns the subtree's largest key.
func (w *walker) tree(id uint64, depth int, lo, hi []byte) ([]byte, error) {
	if depth > maxTreeDepth {
		return nil, corruptFile("page %d: tree deeper than %d", id, maxTreeDepth)
	}
	p, err := w.page(id)
	if err != nil {
		return nil, err
	}
	var n int
	switch le.Uint16(p[8:]) {
	case flagBranch:
		n = int(le.Uint16(p[10:]))
		if n == 0 || pageHeader+n*elemSize > len(p) {
			return nil, corruptFile("page %d: branch of %d elements", id, n)
		}
	case flagLeaf:
		if err := w.leaf(p, id, depth); err != nil {
			return nil, err
		}
		n = int(le.Uint16(p[10:]))
	default:
		return nil, corruptFile("page %d: type %#x in a tree", id, le.Uint16(p[8:]))
	}
	keys := make([][]byte, n)
	for i := range keys {
		e := pageHeader + i*elemSize
		pos, ksize := le.Uint32(p[e:]), le.Uint32(p[e+4:])
		if le.Uint16(p[8:]) == flagLeaf {
			pos, ksize = le.Uint32(p[e+4:]), le.Uint32(p[e+8:])
		}
		if !within(p, e, pos, ksize) {
			return nil, corruptFile("page %d: element %d outside the page", id, i)
		}
		keys[i] = p[e+int(pos) : e+int(pos)+int(ksize)]
	}
	prev := lo
	var top []byte
	for i, k := range keys {
		if (prev != nil && bytes.Compare(prev, k) > 0) || (i > 0 && bytes.Equal(prev, k)) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return nil, corruptFile("page %d: key %d out of order", id, i)
		}
		if le.Uint16(p[8:]) == flagLeaf {
			prev, top = k, k
			continue
		}
		next := hi
		if i < n-1 {
			next = keys[i+1]
		}
		if top, err = w.tree(le.Uint64(p[pageHeader+i*elemSize+8:]), depth+1, k, next); err != nil {
			return nil, err
		}
		prev = top
	}
	return top, nil
}

// leaf checks the elements of leaf page p (a stored page, or an inline
// bucket's page) and walks the buckets it holds.
func (w *walker) leaf(p []byte, id uint64, depth int) error {
	if len(p) < pageHeader {
		return corruptFile("page %d: short inline page", id)
	}
	n := int(le.Uint16(p[10:]))
	if pageHeader+n*elemSize > len(p) {
		return corruptFile("page %d: leaf of %d elements", id, n)
	}
	for i := range n {
		e := pageHeader + i*elemSize
		pos, ksize, vsize := le.Uint32(p[e+4:]), le.Uint32(p[e+8:]), le.Uint32(p[e+12:])
		if !within(p, e, pos, ksize+vsize) || uint64(ksize)+uint64(vsize) > uint64(len(p)) {
			return corruptFile("page %d: leaf element %d outside the page", id, i)
		}
		if le.Uint32(p[e:])&bucketLeaf == 0 {
			continue
		}
		v := p[e+int(pos)+int(ksize) : e+int(pos)+int(ksize)+int(vsize)]
		if len(v) < 16 {
			return corruptFile("page %d: bucket element %d of %d bytes", id, i, len(v))
		}
		if root := le.Uint64(v); root != 0 {
			if _, err := w.tree(root, depth+1, nil, nil); err != nil {
				return err
			}
		} else if len(v) < 16+pageHeader || le.Uint16(v[16+8:]) != flagLeaf {
			return corruptFile("page %d: inline bucket %d is not a leaf", id, i)
		} else if err := w.leaf(v[16:], id, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// within reports whether length bytes at pos past element offset e are
// inside p.
func within(p []byte, e int, pos, length uint32) bool {
	end := uint64(e) + uint64(pos) + uint64(length)
	return end <= uint64(len(p))
}

// InUse returns how many bytes at the start of the file bbolt's valid
// meta page says are in use (its high-water mark): what lies beyond is
// preallocated space nothing reads.
func InUse(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	_, inUse, err := Extent(f)
	return inUse, err
}

// Extent returns the size of the open bbolt file f and how many bytes at
// its start are in use (see InUse). It reads the two meta pages' headers.
func Extent(f *os.File) (size, inUse int64, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	w := &walker{f: f, size: st.Size(), seen: map[uint64]bool{}}
	if _, _, err := w.meta(); err != nil {
		return 0, 0, err
	}
	return st.Size(), int64(w.hwm * w.ps), nil
}
