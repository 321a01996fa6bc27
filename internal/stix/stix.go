package stix

import (
	"errors"
	"mime"
	"strconv"
	"strings"
)

// MediaType is the media type of a STIX 2.1 bundle.
const MediaType = "application/stix+json;version=2.1"

// IsMediaType reports whether t names MediaType: the type and parameter
// names are case-insensitive, spaces may stand around ';', and the version
// may be quoted ("2.1"). A missing version, another version or any other
// parameter makes it false.
func IsMediaType(t string) bool {
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || mt != "application/stix+json" || len(params) != 1 {
		return false
	}
	return params["version"] == "2.1"
}

// ErrInvalid is the kind of every error Validate returns: check for it
// with errors.Is; the *Error (errors.As) says where and what.
var ErrInvalid = errors.New("stix: invalid STIX 2.1 bundle")

// Error names what is wrong: the object (its index in the bundle's
// "objects" and its id when known) and the property (a JSON path inside
// the object, "" for the object as a whole), e.g.
//
//	objects[3] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): "pattern": required property missing
//
// Object is -1 for the bundle itself (ID is then the bundle's id when
// known). The message carries no package prefix: callers wrap it with
// their operation. Unwrap gives ErrInvalid.
type Error struct {
	Object   int
	ID       string
	Property string
	Problem  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Object < 0 {
		b.WriteString("bundle")
	} else {
		b.WriteString("objects[")
		b.WriteString(strconv.Itoa(e.Object))
		b.WriteString("]")
	}
	if e.ID != "" {
		b.WriteString(" (")
		b.WriteString(e.ID)
		b.WriteString(")")
	}
	b.WriteString(": ")
	if e.Property != "" {
		b.WriteString(strconv.Quote(e.Property))
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Validate allocates at most AllocPerByte bytes per payload byte plus
// AllocFixed bytes, garbage included, whatever the payload: validating a
// payload of n bytes takes at most AllocPerByte*n + AllocFixed bytes.
// TestMemoryBound holds it to that on payloads built to cost the most.
const (
	AllocPerByte = 8
	AllocFixed   = 64 << 10
)

// Validate checks one payload as a STIX 2.1 bundle, as described in the
// package documentation. It returns nil or a *Error for the first problem
// found: the bundle's own properties first, then each object in order.
// It never panics; time is linear in len(payload) and memory bounded by
// AllocPerByte and AllocFixed. It does not keep payload, and the error
// does not refer to it; payload must not change during the call.
func Validate(payload []byte) error {
	// What cannot be a bundle is refused before anything is built.
	if k, ok := firstKind(payload); ok && k != kObject {
		return &Error{Object: -1, Problem: notABundle(k)}
	}
	d, serr := parse(payload)
	if serr != nil {
		return syntaxToError(serr)
	}
	v := &validator{d: d}
	v.bundle()
	if v.err != nil {
		return v.err
	}
	return nil
}

// syntaxToError places a JSON-level problem: inside objects[i] when the
// path goes there, else on the bundle.
func syntaxToError(s *syntaxError) *Error {
	e := &Error{Object: -1, Problem: s.msg + " (at byte " + strconv.Itoa(s.off) + ")"}
	rest := s.path
	if len(rest) >= 2 && !rest[0].el && rest[0].key == "objects" && rest[1].el {
		e.Object = rest[1].idx
		rest = rest[2:]
		e.ID = strings.Clone(s.objID) // it is in the payload
	}
	e.Property = renderPath(rest)
	return e
}

// renderPath writes a path as a.b[2].c.
func renderPath(path []pathElem) string {
	var b strings.Builder
	for _, p := range path {
		if p.el {
			b.WriteString("[")
			b.WriteString(strconv.Itoa(p.idx))
			b.WriteString("]")
			continue
		}
		if b.Len() > 0 {
			b.WriteString(".")
		}
		b.WriteString(p.key)
	}
	return b.String()
}

// validator walks a parsed bundle. The first problem it finds is kept in
// err and ends the walk.
type validator struct {
	d   *doc
	obj int    // index of the object being checked, -1 for the bundle
	id  string // its id, once known to be a valid identifier
	err *Error

	path []pathElem // memory for object.path, reused object to object
}

// bad records a problem (the first one wins) and returns false. The
// strings are copied: they may refer to the payload, which the *Error
// must not (the caller may reuse it).
func (v *validator) bad(prop, problem string) bool {
	if v.err == nil {
		v.err = &Error{Object: v.obj, ID: strings.Clone(v.id), Property: strings.Clone(prop), Problem: strings.Clone(problem)}
	}
	return false
}

// notABundle is the problem of a top-level value of kind k, not an object.
func notABundle(k kind) string {
	return "must be a JSON object (a STIX bundle), got a JSON " + k.String()
}

// bundle checks the top-level value and then every object.
func (v *validator) bundle() {
	d := v.d
	const root = 0
	v.obj = -1
	if d.kind(root) != kObject { // not reached: Validate refused it already
		v.bad("", notABundle(d.kind(root)))
		return
	}
	t := d.get(root, "type")
	switch {
	case t < 0:
		v.bad("type", "required property missing")
		return
	case d.kind(t) != kString:
		v.bad("type", "must be a string")
		return
	case d.str(t) != "bundle":
		v.bad("type", `must be "bundle", got `+show(d.str(t))+" (the payload must be a STIX bundle)")
		return
	}
	id := d.get(root, "id")
	switch {
	case id < 0:
		v.bad("id", "required property missing")
		return
	case d.kind(id) != kString:
		v.bad("id", "must be a string")
		return
	}
	s := d.str(id)
	if typ, p := identifierProblem(s); p != "" {
		v.bad("id", p)
		return
	} else if typ != "bundle" {
		v.bad("id", "must be an identifier bundle--<UUID>, got "+show(s))
		return
	}
	v.id = s
	// A STIX 2.1 bundle has no spec_version (§8); a 2.0 bundle has
	// "2.0". A value of "2.1" is tolerated as harmless.
	if sv := d.get(root, "spec_version"); sv >= 0 {
		if d.kind(sv) != kString || d.str(sv) != "2.1" {
			v.bad("spec_version", "a STIX 2.1 bundle has no spec_version; got "+d.raw(sv)+" (is this STIX 2.0?)")
			return
		}
	}
	objs := d.get(root, "objects")
	if objs < 0 {
		return // a bundle without objects is valid
	}
	if d.kind(objs) != kArray {
		v.bad("objects", "must be a list of STIX objects")
		return
	}
	if d.empty(objs) {
		v.bad("objects", "must not be empty (STIX forbids empty lists: omit the property instead)")
		return
	}
	i := 0
	for c := d.first(objs); c >= 0; c = d.next(objs, c) {
		if !v.object(i, c) {
			return
		}
		i++
	}
}
