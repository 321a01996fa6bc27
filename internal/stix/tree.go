package stix

import (
	"hash/maphash"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds the parsed form of a payload (a flat tree of spans into
// it, built by the parser in json.go) and how the validator reads it.
//
// Memory: the payload is not copied (strings are read in place); each
// JSON value and each member's key is a 12-byte node, and since every
// node but the first takes at least two bytes of payload ("0," in a
// list), the nodes take at most 6 bytes per payload byte. Nodes live in
// chunks of fixed size, so growing never copies them. Besides: the keys
// written with escapes, decoded into one buffer (its growth allocates at
// most 3 bytes per payload byte); while parsing, for the duplicate check,
// a key table per nesting level, reused from object to object; and,
// built when first needed, a key table for each object of more than
// smallObject members the validator looks into and every elemStride-th
// element of each list a selector indexes into. Validate's bound
// (AllocPerByte, AllocFixed) is held by TestMemoryBound.

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
	kKey // the key of an object's member: the node just before its value
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object", "key"}[k]
}

// node is one JSON value or one member's key. Nodes are in document
// order: a container comes before its contents, a member's key just before
// its value. Spans are byte offsets: for a string the bytes between the
// quotes, for a number or literal the token, for a container from its
// opening to its closing bracket, all in the payload; for a key its bytes
// between the quotes, in the payload, or, when it holds escapes, its
// decoded bytes in doc.keys.
type node struct {
	start, end int32
	// info holds the kind in its low kindBits bits and above them, for a
	// container, the index of the node after its contents; for a string
	// or key, 1 if it holds escapes.
	info uint32
}

const (
	kindBits = 3
	kindMask = 1<<kindBits - 1
)

func (n *node) kind() kind { return kind(n.info & kindMask) }

// esc reports whether a string or key holds escapes.
func (n *node) esc() bool {
	return (n.kind() == kString || n.kind() == kKey) && n.info>>kindBits != 0
}

func flag(b bool) uint32 {
	if b {
		return 1 << kindBits
	}
	return 0
}

// chunkLen is how many nodes a chunk holds.
const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

// doc is a parsed payload: node 0 is the top-level value.
type doc struct {
	src    []byte
	chunks [][]node // the nodes, chunkLen to a chunk
	n      int32    // how many nodes
	keys   []byte   // the escaped keys, decoded

	seed  maphash.Seed
	index map[int32][]uint32 // key tables of objects with many members, built on demand
	elems map[int32][]int32  // every elemStride-th element, by array, built on demand
}

// smallObject is how many members an object may have before lookups and
// the duplicate check use a table instead of a linear scan.
const smallObject = 16

// elemStride is the spacing of the elements doc.elems records.
const elemStride = 16

func (d *doc) at(i int32) *node { return &d.chunks[i>>chunkBits][i&(chunkLen-1)] }

// add appends a node and returns its index. Only the first chunk grows
// (from a size guessed from the payload's); later ones are made full size.
func (d *doc) add(n node) int32 {
	last := len(d.chunks) - 1
	switch {
	case last < 0:
		d.chunks = append(d.chunks, make([]node, 0, min(chunkLen, len(d.src)/16+16)))
		last = 0
	case len(d.chunks[last]) == chunkLen:
		d.chunks = append(d.chunks, make([]node, 0, chunkLen))
		last++
	case len(d.chunks[last]) == cap(d.chunks[last]):
		grown := make([]node, len(d.chunks[last]), min(2*cap(d.chunks[last]), chunkLen))
		copy(grown, d.chunks[last])
		d.chunks[last] = grown
	}
	d.chunks[last] = append(d.chunks[last], n)
	d.n++
	return d.n - 1
}

// close records that container i ends at byte end, its contents being
// the nodes added so far.
func (d *doc) close(i int32, end int) {
	n := d.at(i)
	n.end = int32(end)
	n.info = n.info&kindMask | uint32(d.n)<<kindBits
}

// text returns b[start:end] as a string without copying it. The string
// aliases b, which must not change while it is in use: the payload does
// not during Validate, doc.keys is only appended to, and what outlives
// Validate (an *Error) is copied (see validator.bad and syntaxToError).
func text(b []byte, start, end int32) string {
	if start >= end {
		return ""
	}
	return unsafe.String(&b[start], end-start)
}

// Reading the tree.

// kind returns the kind of node i.
func (d *doc) kind(i int32) kind { return d.at(i).kind() }

// skip returns the node after node i and its contents.
func (d *doc) skip(i int32) int32 {
	n := d.at(i)
	if k := n.kind(); k == kArray || k == kObject {
		return int32(n.info >> kindBits)
	}
	return i + 1
}

// empty reports whether container i has no elements or members.
func (d *doc) empty(i int32) bool { return d.skip(i) == i+1 }

// first returns the first element of array a, or the value of the first
// member of object a; -1 if there is none.
func (d *doc) first(a int32) int32 {
	c := a + 1
	if d.kind(a) == kObject {
		c++ // past the key
	}
	if c >= d.skip(a) {
		return -1
	}
	return c
}

// next returns the element or member value of container a after c, or -1.
func (d *doc) next(a, c int32) int32 {
	n := d.skip(c)
	if d.kind(a) == kObject {
		n++ // past the key
	}
	if n >= d.skip(a) {
		return -1
	}
	return n
}

// str returns the value of string node i.
func (d *doc) str(i int32) string {
	n := d.at(i)
	if n.esc() {
		return unescape(d.src[n.start:n.end])
	}
	return text(d.src, n.start, n.end)
}

// keyText returns the key of key node k.
func (d *doc) keyText(k int32) string {
	n := d.at(k)
	if n.esc() {
		return text(d.keys, n.start, n.end)
	}
	return text(d.src, n.start, n.end)
}

// key returns the key of member i (its value's node).
func (d *doc) key(i int32) string { return d.keyText(i - 1) }

// raw returns the text of node i as it is in the payload.
func (d *doc) raw(i int32) string {
	n := d.at(i)
	return text(d.src, n.start, n.end)
}

// get returns the member of object o named key, or -1. An object of more
// than smallObject members gets a key table the first time.
func (d *doc) get(o int32, key string) int32 {
	t, ok := d.index[o]
	if !ok {
		// The key nodes, each followed by its value (a last key without
		// one is where a parse stopped).
		n, end := 0, d.skip(o)
		for k := o + 1; k+1 < end; k = d.skip(k + 1) {
			if n++; n <= smallObject && d.keyText(k) == key {
				return k + 1
			}
		}
		if n <= smallObject {
			return -1
		}
		t = d.tableOf(o, n)
		if d.index == nil {
			d.index = make(map[int32][]uint32)
		}
		d.index[o] = t
	}
	if _, k, _ := d.probe(t, key); k != 0 {
		return k + 1
	}
	return -1
}

// elem returns element i of array a, or -1.
func (d *doc) elem(a int32, i int) int32 {
	if i < 0 {
		return -1
	}
	c := d.first(a)
	if i >= elemStride {
		es := d.strided(a)
		if i/elemStride >= len(es) {
			return -1
		}
		c, i = es[i/elemStride], i%elemStride
	}
	for ; c >= 0 && i > 0; i-- {
		c = d.next(a, c)
	}
	return c
}

// strided returns elements 0, elemStride, 2*elemStride... of array a.
func (d *doc) strided(a int32) []int32 {
	if es, ok := d.elems[a]; ok {
		return es
	}
	var es []int32
	i := 0
	for c := d.first(a); c >= 0; c = d.next(a, c) {
		if i%elemStride == 0 {
			es = append(es, c)
		}
		i++
	}
	if d.elems == nil {
		d.elems = make(map[int32][]int32)
	}
	d.elems[a] = es
	return es
}

// A key table finds an object's members by key: open addressing with
// linear probing, at most 3/4 of the slots full. A slot is 0 (empty; node
// 0 is never a key) or a key node (below 2^29, see maxPayload) with the
// top 3 bits of its key's hash as a tag above it, so that most other keys
// met while probing are passed without reading them. Keys are hashed with
// a seed drawn per parse, so that no payload can be built to make them
// collide.

const (
	tagShift = 29
	nodeMask = 1<<tagShift - 1
)

// probe returns the slot of key in table t: the slot holding its key node
// k, or else the empty slot where it would go (k is then 0); and the tag
// to store with the key's node. t may be of any size but must have an
// empty slot.
func (d *doc) probe(t []uint32, key string) (slot int, k int32, tag uint32) {
	h := maphash.String(d.seed, key)
	tag = uint32(h>>(64-(32-tagShift))) << tagShift
	i := int(uint64(uint32(h)) * uint64(len(t)) >> 32) // in [0, len(t))
	for ; t[i] != 0; i++ {
		if t[i]&^nodeMask == tag {
			if k := int32(t[i] & nodeMask); d.keyText(k) == key {
				return i, k, tag
			}
		}
		if i == len(t)-1 {
			i = -1
		}
	}
	return i, 0, tag
}

// tableOf returns the key table of object o, which has n members: 3/4
// full, not more.
func (d *doc) tableOf(o int32, n int) []uint32 {
	t := make([]uint32, n+n/3+1)
	for c := d.first(o); c >= 0; c = d.next(o, c) {
		i, _, tag := d.probe(t, d.key(c))
		t[i] = uint32(c-1) | tag
	}
	return t
}

// appendUnescaped appends the value of a string's contents (the bytes
// between its quotes, which the parser has checked) to b, decoding as
// encoding/json does: a lone surrogate becomes U+FFFD.
func appendUnescaped(b, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			i++
			continue
		}
		switch e := s[i+1]; e {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := u4(s[i:])
			if r < 0 {
				return b // not reached: the parser checked the escapes
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2 := utf16.DecodeRune(r, u4(s[i:])); r2 != utf8.RuneError {
					r = r2
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // '"', '\\', '/'
			b = append(b, e)
		}
		i += 2
	}
	return b
}

// u4 decodes a \uXXXX escape at the start of s, or returns -1.
func u4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape returns the value of a string's contents that hold escapes.
func unescape(s []byte) string {
	b := appendUnescaped(make([]byte, 0, len(s)), s)
	return text(b, 0, int32(len(b))) // b is not changed after
}
