package stix

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds a strict, bounded JSON parser (RFC 8259) that builds a
// flat tree of spans into the payload, so the validator can look at any
// object in any order and name where a problem is. It is not
// encoding/json because the validator needs what encoding/json does not
// give: the order of members, duplicate keys refused, a nesting limit
// enforced before descending, the path of a syntax error, and a memory
// cost that does not depend on how the values would be boxed (a node is
// 36 bytes whatever its value; strings stay in the payload).

// MaxDepth is how deeply arrays and objects may nest, the bundle itself
// counting as 1 (so a STIX object is at depth 3 and its properties' values
// at 4). Deeper input is refused before it is descended into.
const MaxDepth = 64

// maxPayload keeps every offset within an int32.
const maxPayload = 1 << 30

type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// node is one JSON value. Spans are byte offsets into the payload: for a
// string the bytes between the quotes, for a number or literal the token,
// for a container from its opening to its closing bracket. A member of an
// object also carries its key's span.
type node struct {
	kind       kind
	esc        bool  // the string value holds escapes: decode before use
	kesc       bool  // the key holds escapes
	start, end int32 // the value's span
	kstart     int32 // the key's span, members only
	kend       int32
	first      int32 // first child (element or member), -1 for none
	next       int32 // next sibling, -1 for none
	n          int32 // number of children
}

// doc is a parsed payload: nodes[0] is the top-level value.
type doc struct {
	src   string
	nodes []node
	index map[int32]map[string]int32 // member lookup for objects with many members
	elems map[int32][]int32          // element lookup for long arrays, built on demand
}

// smallObject is how many members an object may have before lookups and
// the duplicate check use a map instead of a linear scan.
const smallObject = 16

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
	conts []int32
	err   *syntaxError
}

// parse parses payload as exactly one JSON value, with optional white
// space around it. It returns the tree or a *syntaxError.
func parse(payload []byte) (*doc, *syntaxError) {
	if len(payload) > maxPayload {
		return nil, &syntaxError{off: 0, msg: "payload too large to validate"}
	}
	d := &doc{src: string(payload), nodes: make([]node, 0, len(payload)/16+1)}
	p := &parser{d: d}
	p.skipSpace()
	if _, ok := p.value(0); !ok {
		return nil, p.err
	}
	p.skipSpace()
	if p.pos < len(d.src) {
		return nil, &syntaxError{off: p.pos, msg: "trailing data after the bundle"}
	}
	return d, nil
}

func (p *parser) fail(msg string) bool {
	if p.err == nil {
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
	if p.d.nodes[o].kind != kObject {
		return ""
	}
	id := p.d.get(o, "id")
	if id < 0 || p.d.nodes[id].kind != kString {
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
	r, _ := utf8.DecodeRuneInString(p.d.src[p.pos:])
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

func (p *parser) add(n node) int32 {
	p.d.nodes = append(p.d.nodes, n)
	return int32(len(p.d.nodes) - 1)
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
		return p.add(node{kind: kString, esc: esc, start: start, end: end, first: -1, next: -1}), true
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		if !p.number() {
			return -1, false
		}
		return p.add(node{kind: kNumber, start: int32(start), end: int32(p.pos), first: -1, next: -1}), true
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
	if !strings.HasPrefix(p.d.src[p.pos:], lit) {
		return -1, p.unexpected()
	}
	start := p.pos
	p.pos += len(lit)
	return p.add(node{kind: k, start: int32(start), end: int32(p.pos), first: -1, next: -1}), true
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
			r, size := utf8.DecodeRuneInString(s[p.pos:])
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
	a := p.add(node{kind: kArray, start: int32(p.pos), first: -1, next: -1})
	p.pos++ // [
	p.conts = append(p.conts, a)
	defer func() { p.conts = p.conts[:len(p.conts)-1] }()
	p.skipSpace()
	if p.pos < len(p.d.src) && p.d.src[p.pos] == ']' {
		p.pos++
		p.d.nodes[a].end = int32(p.pos)
		return a, true
	}
	last := int32(-1)
	for i := 0; ; i++ {
		p.path = append(p.path, pathElem{idx: i, el: true})
		v, ok := p.value(depth)
		if !ok {
			return -1, false
		}
		p.path = p.path[:len(p.path)-1]
		if last < 0 {
			p.d.nodes[a].first = v
		} else {
			p.d.nodes[last].next = v
		}
		last = v
		p.d.nodes[a].n++
		p.skipSpace()
		if p.pos < len(p.d.src) && p.d.src[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(p.d.src) && p.d.src[p.pos] == ']' {
			p.pos++
			p.d.nodes[a].end = int32(p.pos)
			return a, true
		}
		return -1, p.unexpected()
	}
}

func (p *parser) object(depth int) (int32, bool) {
	o := p.add(node{kind: kObject, start: int32(p.pos), first: -1, next: -1})
	p.pos++ // {
	p.conts = append(p.conts, o)
	defer func() { p.conts = p.conts[:len(p.conts)-1] }()
	p.skipSpace()
	if p.pos < len(p.d.src) && p.d.src[p.pos] == '}' {
		p.pos++
		p.d.nodes[o].end = int32(p.pos)
		return o, true
	}
	var (
		last  = int32(-1)
		small [smallObject]string
		keys  map[string]int32
	)
	for i := 0; ; i++ {
		if p.pos >= len(p.d.src) || p.d.src[p.pos] != '"' {
			return -1, p.unexpected()
		}
		kpos := p.pos
		ks, ke, kesc, ok := p.str()
		if !ok {
			return -1, false
		}
		key := p.d.src[ks:ke]
		if kesc {
			key = unescape(p.d.src[ks-1 : ke+1])
		}
		// Duplicate names: RFC 8259 leaves their meaning to the parser
		// and I-JSON (RFC 7493, which STIX cites) forbids them; accepting
		// them would let the validator and a consumer read different
		// values, so they are refused.
		dup := false
		if i < smallObject {
			for _, k := range small[:i] {
				dup = dup || k == key
			}
			small[i] = key
		} else {
			if keys == nil {
				keys = make(map[string]int32, 2*smallObject)
				for j, c := 0, p.d.nodes[o].first; c >= 0; j, c = j+1, p.d.nodes[c].next {
					keys[small[j]] = c
				}
			}
			_, dup = keys[key]
		}
		if dup {
			p.pos = kpos
			p.path = append(p.path, pathElem{key: key})
			return -1, p.fail("duplicate key " + strconv.Quote(key))
		}
		p.skipSpace()
		if p.pos >= len(p.d.src) || p.d.src[p.pos] != ':' {
			return -1, p.unexpected()
		}
		p.pos++
		p.skipSpace()
		p.path = append(p.path, pathElem{key: key})
		v, ok := p.value(depth)
		if !ok {
			return -1, false
		}
		p.path = p.path[:len(p.path)-1]
		p.d.nodes[v].kstart, p.d.nodes[v].kend, p.d.nodes[v].kesc = ks, ke, kesc
		if keys != nil {
			keys[key] = v
		}
		if last < 0 {
			p.d.nodes[o].first = v
		} else {
			p.d.nodes[last].next = v
		}
		last = v
		p.d.nodes[o].n++
		p.skipSpace()
		if p.pos < len(p.d.src) && p.d.src[p.pos] == ',' {
			p.pos++
			p.skipSpace()
			continue
		}
		if p.pos < len(p.d.src) && p.d.src[p.pos] == '}' {
			p.pos++
			p.d.nodes[o].end = int32(p.pos)
			if keys != nil {
				if p.d.index == nil {
					p.d.index = make(map[int32]map[string]int32)
				}
				p.d.index[o] = keys
			}
			return o, true
		}
		return -1, p.unexpected()
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unescape decodes a quoted JSON string the parser has already checked.
// Lone surrogates become U+FFFD, as in encoding/json.
func unescape(quoted string) string {
	var s string
	if err := json.Unmarshal([]byte(quoted), &s); err != nil {
		return quoted // not reached: the parser checked the syntax
	}
	return s
}

// str returns the value of string node i.
func (d *doc) str(i int32) string {
	n := &d.nodes[i]
	if n.esc {
		return unescape(d.src[n.start-1 : n.end+1])
	}
	return d.src[n.start:n.end]
}

// key returns the key of member i.
func (d *doc) key(i int32) string {
	n := &d.nodes[i]
	if n.kesc {
		return unescape(d.src[n.kstart-1 : n.kend+1])
	}
	return d.src[n.kstart:n.kend]
}

// raw returns the text of node i as it is in the payload.
func (d *doc) raw(i int32) string {
	n := &d.nodes[i]
	return d.src[n.start:n.end]
}

// get returns the member of object o named key, or -1.
func (d *doc) get(o int32, key string) int32 {
	if m, ok := d.index[o]; ok {
		if v, ok := m[key]; ok {
			return v
		}
		return -1
	}
	for c := d.nodes[o].first; c >= 0; c = d.nodes[c].next {
		if d.key(c) == key {
			return c
		}
	}
	return -1
}

// elem returns element i of array a, or -1.
func (d *doc) elem(a int32, i int) int32 {
	if i < 0 || i >= int(d.nodes[a].n) {
		return -1
	}
	if i < smallObject {
		c := d.nodes[a].first
		for ; i > 0; i-- {
			c = d.nodes[c].next
		}
		return c
	}
	if d.elems == nil {
		d.elems = make(map[int32][]int32)
	}
	es, ok := d.elems[a]
	if !ok {
		es = make([]int32, 0, d.nodes[a].n)
		for c := d.nodes[a].first; c >= 0; c = d.nodes[c].next {
			es = append(es, c)
		}
		d.elems[a] = es
	}
	return es[i]
}
