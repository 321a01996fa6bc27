package stix

import (
	"strconv"
	"strings"
)

// object is the STIX object being checked: its node, type and the rules
// of that type (nil for a type this package does not know), and the path
// from the object to the value being checked, which names the property
// of a problem (kept as a stack so that a valid object costs no strings).
type object struct {
	*validator
	n    int32
	typ  string
	spec *typeSpec
	path []pathElem
}

func (o *object) push(key string) { o.path = append(o.path, pathElem{key: key}) }
func (o *object) pushIdx(i int)   { o.path = append(o.path, pathElem{idx: i, el: true}) }
func (o *object) pop()            { o.path = o.path[:len(o.path)-1] }

// here records a problem with the value at the current path.
func (o *object) here(problem string) bool { return o.bad(renderPath(o.path), problem) }

// object checks element i of the bundle's objects, node n: type and id
// first (everything else depends on them), then every property in
// document order, then the required properties that are missing, then
// the rules between properties.
func (v *validator) object(i int, n int32) bool {
	d := v.d
	v.obj, v.id = i, ""
	if d.kind(n) != kObject {
		return v.bad("", "must be a JSON object (a STIX object), got a JSON "+d.kind(n).String())
	}
	id := d.get(n, "id")
	if id >= 0 && d.kind(id) == kString {
		if _, p := identifierProblem(d.str(id)); p == "" {
			v.id = d.str(id) // named in every problem from here on
		}
	}
	t := d.get(n, "type")
	switch {
	case t < 0:
		return v.bad("type", "required property missing")
	case d.kind(t) != kString:
		return v.bad("type", "must be a string")
	}
	typ := d.str(t)
	if p := typeNameProblem(typ); p != "" {
		return v.bad("type", p)
	}
	if typ == "bundle" {
		return v.bad("type", "a bundle is not a STIX object and cannot be one of a bundle's objects")
	}
	switch {
	case id < 0:
		return v.bad("id", "required property missing")
	case d.kind(id) != kString:
		return v.bad("id", "must be a string")
	}
	idTyp, p := identifierProblem(d.str(id))
	if p != "" {
		return v.bad("id", p)
	}
	if idTyp != typ {
		return v.bad("id", "identifier "+show(d.str(id))+" does not begin with the object's type "+show(typ))
	}
	o := &object{validator: v, n: n, typ: typ, spec: types[typ], path: v.path[:0]}
	defer func() { v.path = o.path[:0] }() // keep the stack's memory for the next object
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		k := d.key(c)
		if k == "type" || k == "id" {
			continue
		}
		o.push(k)
		if !o.property(k, c) {
			return false
		}
		o.pop()
	}
	for _, k := range o.required() {
		if d.get(n, k) < 0 {
			return v.bad(k, "required property missing")
		}
	}
	if !o.order("created", "modified", false) {
		return false
	}
	if o.spec != nil && o.spec.rules != nil {
		return o.spec.rules(o)
	}
	return true
}

// required lists the properties the object must have besides type and id.
func (o *object) required() []string {
	if o.spec == nil {
		return nil
	}
	return o.spec.all
}

// reserved are the property names §3.8 reserves: they must not appear.
var reserved = map[string]bool{"severity": true, "username": true, "phone_number": true, "action": true}

// property checks top-level property k, node c (the path is at k).
func (o *object) property(k string, c int32) bool {
	if p := propertyNameProblem(k); p != "" {
		return o.here(p)
	}
	if reserved[k] {
		return o.here("is a reserved property name (STIX 2.1 §3.8)")
	}
	var chk check
	if o.spec != nil {
		chk = o.spec.props[k]
	}
	if chk == nil {
		chk = common[k]
	}
	if chk == nil {
		chk = bySuffix(k)
	}
	if chk != nil && !chk(o, c) {
		return false
	}
	return o.notEmpty(c)
}

// check checks the value of node n, found at the object's current path.
type check func(o *object, n int32) bool

// bySuffix gives the check the name's suffix calls for (§3.1): _ref holds
// an identifier, _refs a list of them, _hex hex, _bin base64, and an _enc
// property needs the property it gives the encoding of.
func bySuffix(k string) check {
	switch {
	case strings.HasSuffix(k, "_refs"):
		return anyRefs
	case strings.HasSuffix(k, "_ref"):
		return anyRef
	case strings.HasSuffix(k, "_hex"):
		return hexString
	case strings.HasSuffix(k, "_bin"):
		return binary
	case strings.HasSuffix(k, "_enc"):
		return encoding
	}
	return nil
}

// suffixes applies bySuffix to the members of object n (an extension, a
// MIME part), except those in skip.
func (o *object) suffixes(n int32, skip ...string) bool {
	d := o.d
member:
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		k := d.key(c)
		for _, s := range skip {
			if k == s {
				continue member
			}
		}
		if chk := bySuffix(k); chk != nil {
			o.push(k)
			if !chk(o, c) {
				return false
			}
			o.pop()
		}
	}
	return true
}

// notEmpty refuses empty lists (§2.12) and empty dictionaries (§2.3)
// anywhere in the value of node n.
func (o *object) notEmpty(n int32) bool {
	d := o.d
	switch d.kind(n) {
	case kArray:
		if d.empty(n) {
			return o.here("must not be an empty list (omit the property instead)")
		}
		i := 0
		for c := d.first(n); c >= 0; c = d.next(n, c) {
			if k := d.kind(c); k == kArray || k == kObject {
				o.pushIdx(i)
				if !o.notEmpty(c) {
					return false
				}
				o.pop()
			}
			i++
		}
	case kObject:
		if d.empty(n) {
			return o.here("must not be an empty dictionary (omit the property instead)")
		}
		for c := d.first(n); c >= 0; c = d.next(n, c) {
			if k := d.kind(c); k == kArray || k == kObject {
				o.push(d.key(c))
				if !o.notEmpty(c) {
					return false
				}
				o.pop()
			}
		}
	}
	return true
}

// kindIs reports whether node n is of kind k, recording a problem if not.
func (o *object) kindIs(n int32, k kind, what string) bool {
	if o.d.kind(n) != k {
		return o.here("must be " + what + ", got a JSON " + o.d.kind(n).String())
	}
	return true
}

// list checks that node n is a non-empty list and applies each to every
// element.
func (o *object) list(n int32, each check) bool {
	d := o.d
	if !o.kindIs(n, kArray, "a list") {
		return false
	}
	if d.empty(n) {
		return o.here("must not be an empty list (omit the property instead)")
	}
	i := 0
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		o.pushIdx(i)
		if !each(o, c) {
			return false
		}
		o.pop()
		i++
	}
	return true
}

// Checks of single values.

func str(o *object, n int32) bool { return o.kindIs(n, kString, "a string") }

func strList(o *object, n int32) bool { return o.list(n, str) }

func boolean(o *object, n int32) bool { return o.kindIs(n, kBool, "a boolean") }

func specVersion(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	if s := o.d.str(n); s != "2.1" {
		return o.here(`must be "2.1", got ` + show(s))
	}
	return true
}

func ts(o *object, n int32) bool {
	if !o.kindIs(n, kString, "a timestamp string") {
		return false
	}
	if _, problem := parseTimestamp(o.d.str(n)); problem != "" {
		return o.here(problem)
	}
	return true
}

// tsMillis is a timestamp of at least millisecond precision, as created
// and modified must be (§3.2).
func tsMillis(o *object, n int32) bool {
	if !ts(o, n) {
		return false
	}
	if t, _ := parseTimestamp(o.d.str(n)); len(t.frac) < 3 {
		return o.here("must be precise to the millisecond at least (.sssZ), got " + show(o.d.str(n)))
	}
	return true
}

func integer(min, max int64) check {
	return func(o *object, n int32) bool {
		if !o.kindIs(n, kNumber, "an integer") {
			return false
		}
		if problem := integerProblem(o.d.raw(n), min, max); problem != "" {
			return o.here(problem)
		}
		return true
	}
}

func float(min, max float64) check {
	return func(o *object, n int32) bool {
		if !o.kindIs(n, kNumber, "a number") {
			return false
		}
		if problem := floatProblem(o.d.raw(n), min, max); problem != "" {
			return o.here(problem)
		}
		return true
	}
}

func enum(values ...string) check {
	return func(o *object, n int32) bool {
		if !str(o, n) {
			return false
		}
		s := o.d.str(n)
		for _, v := range values {
			if s == v {
				return true
			}
		}
		return o.here("must be one of " + strings.Join(values, ", ") + "; got " + show(s))
	}
}

func lang(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	if problem := langProblem(o.d.str(n)); problem != "" {
		return o.here(problem)
	}
	return true
}

func hexString(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	if problem := hexProblem(o.d.str(n)); problem != "" {
		return o.here(problem)
	}
	return true
}

func binary(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	if problem := base64Problem(o.d.str(n)); problem != "" {
		return o.here(problem)
	}
	return true
}

// encoding is an _enc property: a string, and the property it qualifies
// must be there too (§3.1).
func encoding(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	// Only at the top level, where the sibling is in the STIX object.
	if len(o.path) == 1 {
		if base := strings.TrimSuffix(o.path[0].key, "_enc"); o.d.get(o.n, base) < 0 {
			return o.here("must not be present without " + show(base))
		}
	}
	return true
}

// ref is an identifier, of one of the given types if any are given.
func ref(types ...string) check {
	return func(o *object, n int32) bool {
		if !o.kindIs(n, kString, "an identifier string") {
			return false
		}
		s := o.d.str(n)
		typ, problem := identifierProblem(s)
		if problem != "" {
			return o.here(problem)
		}
		if len(types) == 0 {
			return true
		}
		for _, t := range types {
			if typ == t {
				return true
			}
		}
		return o.here("must refer to an object of type " + strings.Join(types, " or ") + ", got " + show(s))
	}
}

func refs(types ...string) check {
	each := ref(types...)
	return func(o *object, n int32) bool { return o.list(n, each) }
}

// refNot is an identifier of none of the given types; what names what it
// must refer to, for the message.
func refNot(what string, types map[string]bool) check {
	return func(o *object, n int32) bool {
		if !anyRef(o, n) {
			return false
		}
		s := o.d.str(n)
		if typ, _ := identifierProblem(s); types[typ] {
			return o.here("must refer to " + what + ", not a " + typ + ": " + show(s))
		}
		return true
	}
}

// member returns the member key of object n, checked with chk when
// present; required says whether a missing one is a problem.
func (o *object) member(n int32, key string, chk check, required bool) (int32, bool) {
	c := o.d.get(n, key)
	if c < 0 && !required {
		return -1, true
	}
	o.push(key)
	if c < 0 {
		return -1, o.here("required property missing")
	}
	if !chk(o, c) {
		return c, false
	}
	o.pop()
	return c, true
}

// defanged is a boolean that only SCOs (and unknown types) may carry.
func defanged(o *object, n int32) bool {
	if o.spec != nil && o.spec.class != sco {
		return o.here("is defined only for cyber-observable objects (§3.2)")
	}
	return boolean(o, n)
}

// common are the checks of the common properties (§3.2), for every type.
var common = map[string]check{
	"spec_version":        specVersion,
	"created_by_ref":      ref("identity"),
	"created":             tsMillis,
	"modified":            tsMillis,
	"revoked":             boolean,
	"labels":              strList,
	"confidence":          integer(0, 100),
	"lang":                lang,
	"external_references": externalReferences,
	"object_marking_refs": refs("marking-definition"),
	"granular_markings":   granularMarkings,
	"defanged":            defanged,
	"extensions":          extensions,
}

// Rules between properties.

// timestampOf returns the timestamp in property k, if present (it has
// been checked already).
func (o *object) timestampOf(k string) (timestamp, bool) {
	c := o.d.get(o.n, k)
	if c < 0 || o.d.kind(c) != kString {
		return timestamp{}, false
	}
	t, problem := parseTimestamp(o.d.str(c))
	return t, problem == ""
}

// order checks that timestamp later is not before earlier (or, strict,
// after it) when both are present.
func (o *object) order(earlier, later string, strict bool) bool {
	a, okA := o.timestampOf(earlier)
	b, okB := o.timestampOf(later)
	if !okA || !okB {
		return true
	}
	switch c := b.compare(a); {
	case strict && c <= 0:
		return o.bad(later, "must be later than "+show(earlier))
	case c < 0:
		return o.bad(later, "must not be earlier than "+show(earlier))
	}
	return true
}

// has reports whether the object has property k.
func (o *object) has(k string) bool { return o.d.get(o.n, k) >= 0 }

// isTrue reports whether property k is the JSON true.
func (o *object) isTrue(k string) bool {
	c := o.d.get(o.n, k)
	return c >= 0 && o.d.kind(c) == kBool && o.d.raw(c) == "true"
}

// oneOf needs at least one of the properties.
func oneOf(ks ...string) func(o *object) bool {
	return func(o *object) bool {
		for _, k := range ks {
			if o.has(k) {
				return true
			}
		}
		q := make([]string, len(ks))
		for i, k := range ks {
			q[i] = strconv.Quote(k)
		}
		return o.bad("", "needs one of "+strings.Join(q, " or "))
	}
}

// seen checks last_seen >= first_seen.
func seen(o *object) bool { return o.order("first_seen", "last_seen", false) }

// maxInt is the largest integer STIX can carry (§2.10).
const maxInt = 1<<53 - 1
