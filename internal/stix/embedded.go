package stix

import (
	"strconv"
	"strings"
)

// This file checks the types STIX embeds in objects (§2, §7.2.3, §7.3):
// dictionaries, hashes, external references, kill chain phases, granular
// markings and extensions.

// dict is a dictionary (§2.3): a non-empty object whose keys are ASCII
// letters, digits, - and _, at most 250 long.
func dict(o *object, n int32) bool {
	d := o.d
	if !o.kindIs(n, kObject, "a dictionary (JSON object)") {
		return false
	}
	if d.empty(n) {
		return o.here("must not be an empty dictionary (omit the property instead)")
	}
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		if problem := dictKeyProblem(d.key(c), 1); problem != "" {
			return o.here(problem)
		}
	}
	return true
}

// hashes is the hashes type (§2.7): keys of 3 to 250 characters, string
// values; the digests of MD5, SHA-1, SHA-256, SHA-512, SHA3-256 and
// SHA3-512 must be hex of their length.
func hashes(o *object, n int32) bool {
	d := o.d
	if !o.kindIs(n, kObject, "a hashes dictionary (JSON object)") {
		return false
	}
	if d.empty(n) {
		return o.here("must hold at least one hash")
	}
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		k := d.key(c)
		if problem := dictKeyProblem(k, 3); problem != "" {
			return o.here(problem)
		}
		o.push(k)
		if !o.kindIs(c, kString, "a string") {
			return false
		}
		if want, ok := hashLengths[k]; ok {
			h := d.str(c)
			okHex := len(h) == want
			for i := 0; okHex && i < len(h); i++ {
				okHex = isHex(h[i])
			}
			if !okHex {
				return o.here("must be " + strconv.Itoa(want) + " hex digits, got " + show(h))
			}
		}
		o.pop()
	}
	return true
}

// externalReferences is a list of external-reference (§2.5).
func externalReferences(o *object, n int32) bool {
	return o.list(n, func(o *object, e int32) bool {
		if !o.kindIs(e, kObject, "an external reference (JSON object)") {
			return false
		}
		if _, ok := o.member(e, "source_name", str, true); !ok {
			return false
		}
		found := false
		for _, k := range []string{"description", "url", "external_id"} {
			c, ok := o.member(e, k, str, false)
			if !ok {
				return false
			}
			found = found || c >= 0
		}
		if _, ok := o.member(e, "hashes", hashes, false); !ok {
			return false
		}
		if !found {
			return o.here(`needs one of "description", "url" or "external_id" besides "source_name" (§2.5.2)`)
		}
		return true
	})
}

// killChainPhases is a list of kill-chain-phase (§2.11).
func killChainPhases(o *object, n int32) bool {
	return o.list(n, func(o *object, e int32) bool {
		if !o.kindIs(e, kObject, "a kill chain phase (JSON object)") {
			return false
		}
		if _, ok := o.member(e, "kill_chain_name", str, true); !ok {
			return false
		}
		_, ok := o.member(e, "phase_name", str, true)
		return ok
	})
}

// granularMarkings is a list of granular-marking (§7.2.3): selectors that
// select something in this object, and one of marking_ref or lang.
func granularMarkings(o *object, n int32) bool {
	return o.list(n, func(o *object, e int32) bool {
		if !o.kindIs(e, kObject, "a granular marking (JSON object)") {
			return false
		}
		m, ok := o.member(e, "marking_ref", markingRef, false)
		if !ok {
			return false
		}
		l, ok := o.member(e, "lang", lang, false)
		if !ok {
			return false
		}
		switch {
		case m >= 0 && l >= 0:
			o.push("lang")
			return o.here(`must not be present together with "marking_ref"`)
		case m < 0 && l < 0:
			return o.here(`needs one of "marking_ref" or "lang"`)
		}
		_, ok = o.member(e, "selectors", func(o *object, s int32) bool {
			return o.list(s, func(o *object, sel int32) bool {
				if !str(o, sel) {
					return false
				}
				if !o.selects(o.d.str(sel)) {
					return o.here("selector " + show(o.d.str(sel)) + " selects nothing in this object")
				}
				return true
			})
		}, true)
		return ok
	})
}

// selects reports whether selector sel (§7.2.3: components separated by
// ".", each a property name, a dictionary key or a list index "[n]")
// names something present in the object.
func (o *object) selects(sel string) bool {
	d := o.d
	n := o.n
	for rest, more := sel, true; more; {
		var comp string
		comp, rest, more = strings.Cut(rest, ".")
		if strings.HasPrefix(comp, "[") && strings.HasSuffix(comp, "]") {
			digits := comp[1 : len(comp)-1]
			if digits == "" || strings.Trim(digits, "0123456789") != "" || d.kind(n) != kArray {
				return false
			}
			i, err := strconv.Atoi(digits)
			if err != nil {
				return false // too large for any list
			}
			if n = d.elem(n, i); n < 0 {
				return false
			}
			continue
		}
		if d.kind(n) != kObject || comp == "" {
			return false
		}
		if n = d.get(n, comp); n < 0 {
			return false
		}
	}
	return true
}

// extensionTypes is extension-type-enum (§10.4).
var extensionTypes = []string{"new-sdo", "new-sco", "new-sro", "property-extension", "toplevel-property-extension"}

// extensions is the extensions dictionary (§3.2, §7.3): each value a
// non-empty object; a key naming an extension definition must be its
// identifier and its value must carry extension_type.
func extensions(o *object, n int32) bool {
	d := o.d
	if !dict(o, n) {
		return false
	}
	for c := d.first(n); c >= 0; c = d.next(n, c) {
		k := d.key(c)
		o.push(k)
		if !o.kindIs(c, kObject, "an extension (JSON object)") {
			return false
		}
		isDef := strings.HasPrefix(k, "extension-definition--")
		if isDef {
			if _, problem := identifierProblem(k); problem != "" {
				return o.here("key " + problem)
			}
		}
		if _, ok := o.member(c, "extension_type", extensionType, isDef); !ok {
			return false
		}
		if !o.suffixes(c) {
			return false
		}
		o.pop()
	}
	return true
}

var (
	anyRef            = ref()
	anyRefs           = refs()
	extensionType     = enum(extensionTypes...)
	markingRef        = ref("marking-definition")
	extensionTypeList = func(o *object, n int32) bool { return o.list(n, extensionType) }
)
