package stix

import (
	"hash/maphash"
	"strconv"
	"unicode/utf8"
)

// This file holds a strict, bounded JSON parser (RFC 8259) that builds a
// flat tree of spans into the payload, so the validator can look at any
// object in any order and name where a problem is. It is not
// encoding/json because the validator needs what encoding/json does not
// give: the order of members, duplicate keys refused, a nesting limit
// enforced before descending, the path of a syntax error, and a memory
// cost that does not depend on how the values would be boxed (see
// tree.go).

// MaxDepth is how deeply arrays and objects may nest, the bundle itself
// counting as 1 (so a STIX object is at depth 3 and its properties' values
// at 4). Deeper input is refused before it is descended into.
const MaxDepth = 64

// maxPayload keeps every offset within an int32 and every node index
// within the 29 bits node.info has for it: a payload of n bytes has at
// most n/2+1 nodes.
const maxPayload = 1 << 29

// pathElem is one step of the path to the value being parsed.
type pathElem struct {
	key string // member key, or "" for an element
	idx int    // element index
	el  bool   // an array element
}

// syntaxError is a payload that is not acceptable JSON.
type syntaxError struct {
	off   int        // byte offset of the problem
	msg   string     // what is wrong
	path  []pathElem // where, from the top-level value
	objID string     // the id of the bundle's object it is in, when already parsed
}

type parser struct {
	d     *doc
	pos   int
	path  []pathElem
	conts []int32 // the containers being parsed, outermost first
	err   *syntaxError

	tables [MaxDepth + 1][]uint32 // key table memory, by depth
}

// parse parses payload as exactly one JSON value, with optional white
// space around it. It returns the tree or a *syntaxError. The tree
// refers to payload, which must not change while the tree is in use.
func parse(payload []byte) (*doc, *syntaxError) {
	if len(payload) > maxPayload {
		return nil, &syntaxError{off: 0, msg: "payload too large to validate"}
	}
	d := &doc{src: payload, seed: maphash.MakeSeed()}
	p := &parser{d: d}
	p.skipSpace()
	if _, ok := p.value(0); !ok {
		return nil, p.err
	}
	p.skipSpace()
	if p.pos < len(payload) {
		return nil, &syntaxError{off: p.pos, msg: "trailing data after the bundle"}
	}
	return d, nil
}

// firstKind returns the kind of the value payload begins with (after
// white space), telling it from its first byte only; ok is false when no
// value can begin there.
func firstKind(payload []byte) (k kind, ok bool) {
	for _, c := range payload {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case c == '{':
			return kObject, true
		case c == '[':
			return kArray, true
		case c == '"':
			return kString, true
		case c == '-' || c >= '0' && c <= '9':
			return kNumber, true
		case c == 't' || c == 'f':
			return kBool, true
		case c == 'n':
			return kNull, true
		}
		return 0, false
	}
	return 0, false
}

func (p *parser) fail(msg string) bool {
	if p.err == nil {
		// Close the open containers where parsing stopped, so that
		// objectID can walk what was parsed of them.
		for _, c := range p.conts {
			p.d.close(c, p.pos)
		}
		p.err = &syntaxError{
			off:   p.pos,
			msg:   msg,
			path:  append([]pathElem(nil), p.path...),
			objID: p.objectID(),
		}
	}
	return false
}

// objectID returns the id of the object of the bundle's "objects" that
// the parser is in, if that object's "id" member has already been parsed
// and is a valid identifier.
func (p *parser) objectID() string {
	if len(p.path) < 2 || p.path[0].el || p.path[0].key != "objects" || !p.path[1].el || len(p.conts) < 3 {
		return ""
	}
	o := p.conts[2]
	if p.d.kind(o) != kObject {
		return ""
	}
	id := p.d.get(o, "id")
	if id < 0 || p.d.kind(id) != kString {
		return ""
	}
	s := p.d.str(id)
	if _, problem := identifierProblem(s); problem != "" {
		return ""
	}
	return s
}

func (p *parser) unexpected() bool {
	if p.pos >= len(p.d.src) {
		return p.fail("invalid JSON: unexpected end of input")
	}
	r, _ := utf8.DecodeRune(p.d.src[p.pos:])
	return p.fail("invalid JSON: unexpected character " + strconv.QuoteRune(r))
}

func (p *parser) skipSpace() {
	s := p.d.src
	for p.pos < len(s) {
		switch s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses one value at p.pos; depth is that of its parent container.
func (p *parser) value(depth int) (int32, bool) {
	s := p.d.src
	if p.pos >= len(s) {
		return -1, p.unexpected()
	}
	switch c := s[p.pos]; {
	case c == '{' || c == '[':
		if depth+1 > MaxDepth {
			return -1, p.fail("nesting deeper than " + strconv.Itoa(MaxDepth) + " levels")
		}
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		start, end, esc, ok := p.str()
		if !ok {
			return -1, false
		}
		return p.d.add(node{start: start, end: end, info: uint32(kString) | flag(esc)}), true
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		if !p.number() {
			return -1, false
		}
		return p.d.add(node{start: int32(start), end: int32(p.pos), info: uint32(kNumber)}), true
	case c == 't':
		return p.literal("true", kBool)
	case c == 'f':
		return p.literal("false", kBool)
	case c == 'n':
		return p.literal("null", kNull)
	default:
		return -1, p.unexpected()
	}
}

func (p *parser) literal(lit string, k kind) (int32, bool) {
	if len(p.d.src)-p.pos < len(lit) || string(p.d.src[p.pos:p.pos+len(lit)]) != lit {
		return -1, p.unexpected()
	}
	start := p.pos
	p.pos += len(lit)
	return p.d.add(node{start: int32(start), end: int32(p.pos), info: uint32(k)}), true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) number() bool {
	s := p.d.src
	digits := func() bool {
		if p.pos >= len(s) || s[p.pos] < '0' || s[p.pos] > '9' {
			return p.unexpected()
		}
		for p.pos < len(s) && s[p.pos] >= '0' && s[p.pos] <= '9' {
			p.pos++
		}
		return true
	}
	if s[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(s) && s[p.pos] == '0' {
		p.pos++
	} else if !digits() {
		return false
	}
	if p.pos < len(s) && s[p.pos] == '.' {
		p.pos++
		if !digits() {
			return false
		}
	}
	if p.pos < len(s) && (s[p.pos] == 'e' || s[p.pos] == 'E') {
		p.pos++
		if p.pos < len(s) && (s[p.pos] == '+' || s[p.pos] == '-') {
			p.pos++
		}
		if !digits() {
			return false
		}
	}
	return true
}

// str scans a string at p.pos (on its opening quote) and returns the span
// between the quotes.
func (p *parser) str() (start, end int32, esc, ok bool) {
	s := p.d.src
	p.pos++ // opening quote
	start = int32(p.pos)
	for p.pos < len(s) {
		c := s[p.pos]
		switch {
		case c == '"':
			end = int32(p.pos)
			p.pos++
			return start, end, esc, true
		case c == '\\':
			esc = true
			p.pos++
			if p.pos >= len(s) {
				return 0, 0, false, p.unexpected()
			}
			switch s[p.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.pos++
			case 'u':
				p.pos++
				for i := 0; i < 4; i++ {
					if p.pos >= len(s) || !isHex(s[p.pos]) {
						return 0, 0, false, p.fail("invalid JSON: invalid \\u escape in string")
					}
					p.pos++
				}
			default:
				return 0, 0, false, p.fail("invalid JSON: invalid escape in string")
			}
		case c < 0x20:
			return 0, 0, false, p.fail("invalid JSON: control character in string")
		case c >= utf8.RuneSelf:
			// Outside strings any such byte is a syntax error already.
			r, size := utf8.DecodeRune(s[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false, p.fail("invalid UTF-8 in string")
			}
			p.pos += size
		default:
			p.pos++
		}
	}
	return 0, 0, false, p.fail("invalid JSON: unterminated string")
}

func (p *parser) array(depth int) (int32, bool) {
	d := p.d
	a := d.add(node{start: int32(p.pos), info: uint32(kArray)})
	p.pos++ // [
	p.conts = append(p.conts, a)
	defer func() { p.conts = p.conts[:len(p.conts)-1] }()
	p.skipSpace()
	if p.pos < len(d.src) && d.src[p.pos] == ']' {
		p.pos++
		d.close(a, p.pos)
		return a, true
	}
	for i := 0; ; i++ {
		p.path = append(p.path, pathElem{idx: i, el: true})
		if _, ok := p.value(depth); !ok {
			return -1, false
		}
		p.path = p.path[:len(p.path)-1]
		p.skipSpace()
		if p.pos < len(d.src) && d.src[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(d.src) && d.src[p.pos] == ']' {
			p.pos++
			d.close(a, p.pos)
			return a, true
		}
		return -1, p.unexpected()
	}
}

func (p *parser) object(depth int) (int32, bool) {
	d := p.d
	o := d.add(node{start: int32(p.pos), info: uint32(kObject)})
	p.pos++ // {
	p.conts = append(p.conts, o)
	defer func() { p.conts = p.conts[:len(p.conts)-1] }()
	p.skipSpace()
	if p.pos < len(d.src) && d.src[p.pos] == '}' {
		p.pos++
		d.close(o, p.pos)
		return o, true
	}
	var (
		small [smallObject]int32 // the first members' key nodes
		table []uint32           // then a key table of them all
	)
	for i := 0; ; i++ {
		if p.pos >= len(d.src) || d.src[p.pos] != '"' {
			return -1, p.unexpected()
		}
		kpos := p.pos
		ks, ke, kesc, ok := p.str()
		if !ok {
			return -1, false
		}
		key := text(d.src, ks, ke)
		if kesc {
			// Grown by doubling, not by append's smaller steps that
			// would leave more garbage behind, and never beyond what the
			// rest of the payload can need (a decoded key is no longer
			// than its raw form): at most 3 bytes per payload byte in all.
			from := len(d.keys)
			if need := from + int(ke-ks); need > cap(d.keys) {
				grown := make([]byte, from, min(max(2*cap(d.keys), need, 256), from+len(d.src)-int(ks)))
				copy(grown, d.keys)
				d.keys = grown
			}
			d.keys = appendUnescaped(d.keys, d.src[ks:ke])
			ks, ke = int32(from), int32(len(d.keys))
			key = text(d.keys, ks, ke)
		}
		// Duplicate names: RFC 8259 leaves their meaning to the parser
		// and I-JSON (RFC 7493, which STIX cites) forbids them; accepting
		// them would let the validator and a consumer read different
		// values, so they are refused.
		dup, slot, tag := false, 0, uint32(0)
		if i < smallObject {
			for _, k := range small[:i] {
				dup = dup || d.keyText(k) == key
			}
		} else {
			if table == nil || 4*(i+1) > 3*len(table) {
				table = p.table(depth, o, max(2*len(table), 2*smallObject))
			}
			var k int32
			slot, k, tag = d.probe(table, key)
			dup = k != 0
		}
		if dup {
			p.pos = kpos
			p.path = append(p.path, pathElem{key: key})
			return -1, p.fail("duplicate key " + strconv.Quote(key))
		}
		k := d.add(node{start: ks, end: ke, info: uint32(kKey) | flag(kesc)})
		if i < smallObject {
			small[i] = k
		} else {
			table[slot] = uint32(k) | tag
		}
		p.skipSpace()
		if p.pos >= len(d.src) || d.src[p.pos] != ':' {
			return -1, p.unexpected()
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, pathElem{key: key})
		if _, ok := p.value(depth); !ok {
			return -1, false
		}
		p.path = p.path[:len(p.path)-1]
		p.skipSpace()
		if p.pos < len(d.src) && d.src[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(d.src) && d.src[p.pos] == '}' {
			p.pos++
			d.close(o, p.pos)
			return o, true
		}
		return -1, p.unexpected()
	}
}

// table returns a key table of size slots holding the keys of the
// members of object o parsed so far, o being at depth. Its memory is that
// depth's, reused from object to object.
func (p *parser) table(depth int, o int32, size int) []uint32 {
	t := p.tables[depth]
	if cap(t) < size {
		t = make([]uint32, size)
		p.tables[depth] = t
	}
	t = t[:size]
	clear(t)
	// The members parsed so far: o's contents are complete up to d.n.
	d := p.d
	for k := o + 1; k < d.n; k = d.skip(k + 1) {
		i, _, tag := d.probe(t, d.keyText(k))
		t[i] = uint32(k) | tag
	}
	return t
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
