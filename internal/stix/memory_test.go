package stix

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// adversarial are payloads of about size bytes built to make a parser
// spend as much memory per payload byte as it can: the most values per
// byte, the deepest nesting allowed, many small containers, many members.
func adversarial(size int) []struct {
	name    string
	payload []byte
} {
	repeat := func(open, item, sep, close string) []byte {
		var b strings.Builder
		b.Grow(size + len(item) + len(close))
		b.WriteString(open)
		for i := 0; b.Len() < size; i++ {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(item)
		}
		b.WriteString(close)
		return []byte(b.String())
	}
	// Distinct keys as short as can be: one byte of printable ASCII, then
	// two, then three.
	var ascii []byte
	for c := byte(' '); c <= '~'; c++ {
		if c != '"' && c != '\\' {
			ascii = append(ascii, c)
		}
	}
	// manyKeys writes count members (enough for size bytes if 0) of
	// distinct keys: prefix and then letters of alphabet, the first as a
	// \u escape if esc.
	manyKeys := func(open, prefix string, alphabet []byte, value, close string, esc bool, count int) []byte {
		var b strings.Builder
		b.WriteString(open)
		key := make([]byte, 0, 8)
		for n := 0; count == 0 && b.Len() < size || n < count; n++ {
			key = key[:0]
			for m := n; ; m = m/len(alphabet) - 1 {
				key = append(key, alphabet[m%len(alphabet)])
				if m < len(alphabet) {
					break
				}
			}
			if n > 0 {
				b.WriteString(",")
			}
			k := prefix + string(key)
			if esc {
				k = `\u00` + strconv.FormatInt(int64(k[0]), 16) + k[1:]
			}
			b.WriteString(`"` + k + `":` + value)
		}
		b.WriteString(close)
		return []byte(b.String())
	}
	deep := strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1)
	// Valid bundles, so that the validator runs too: one custom object
	// whose properties are built as above.
	const obj = `{"type":"x-a","id":"x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c"`
	bundle := func(props []byte) []byte {
		return append([]byte(`{"type":"bundle","id":"`+bundleID+`","objects":[`), append(props, "]}"...)...)
	}
	var sel strings.Builder
	sel.WriteString(obj + `,"granular_markings":[{"lang":"en","selectors":["x_l.[0]"`)
	for i := 1; sel.Len() < size/2; i++ {
		sel.WriteString(`,"x_l.[` + strconv.Itoa(i*7919%(size/8)) + `]"`)
	}
	sel.WriteString(`]}],"x_l":[`)
	var refs strings.Builder
	refs.WriteString(obj + `,"x_refs":[`)
	for i := 0; refs.Len() < size; i++ {
		if i > 0 {
			refs.WriteString(",")
		}
		refs.WriteString(`"\u0069dentity--023d105b-752e-4e3c-941c-7d3f3cb15e9e"`)
	}
	refs.WriteString("]}")
	// Long keys with an escape: their decoded copies are most of the
	// payload.
	var long strings.Builder
	long.WriteString("{")
	for i := 0; long.Len() < size; i++ {
		if i > 0 {
			long.WriteString(",")
		}
		long.WriteString(`"\n` + strings.Repeat("k", 1000) + strconv.Itoa(i) + `":0`)
	}
	long.WriteString("}")
	// Small objects whose every string is escaped, so that each read of
	// one decodes it.
	const escObj = `{"type":"\u0078-a","id":"\u0078-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c",` +
		`"created":"\u0032016-04-06T20:03:00.000Z","modified":"\u0032016-04-06T20:03:00.000Z"}`
	small := `{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0,"q":0}`
	return []struct {
		name    string
		payload []byte
	}{
		{"top-level-zeros", repeat("[", "0", ",", "]")},
		{"zeros", repeat(`{"a":[`, "0", ",", "]}")},
		{"empty-strings", repeat(`{"a":[`, `""`, ",", "]}")},
		{"deep-lists", repeat(`{"a":[`, deep[1:len(deep)-1], ",", "]}")},
		{"empty-objects", repeat(`{"a":[`, "{}", ",", "]}")},
		{"tiny-objects", repeat(`{"a":[`, `{"":0}`, ",", "]}")},
		{"objects-of-17", repeat(`{"a":[`, small, ",", "]}")},
		{"objects-of-97", repeat(`{"a":[`, string(manyKeys("{", "", ascii, "0", "}", false, 97)), ",", "]}")},
		{"many-keys", manyKeys("{", "", ascii, "0", "}", false, 0)},
		{"many-escaped-keys", manyKeys("{", "", ascii, "0", "}", true, 0)},
		// Just past a growth of the parser's key table (3/4 of 2^17
		// slots), an object the validator then looks into.
		{"many-keys-past-growth", manyKeys("{", "", ascii, "0", "}", false, 3<<17/4+1)},
		{"long-escaped-keys", []byte(long.String())},
		{"bundle-escaped-objects", bundle(repeat("", escObj, ",", ""))},
		{"bundle-zeros", bundle(repeat(obj+`,"x_l":[`, "0", ",", "]}"))},
		{"bundle-deep-lists", bundle(repeat(obj+`,"x_l":[`, strings.Repeat("[", MaxDepth-5)+"0"+strings.Repeat("]", MaxDepth-5), ",", "]}"))},
		{"bundle-many-properties", bundle(manyKeys(obj+",", "xx", []byte("abcdefghijklmnopqrstuvwxyz0123456789"), "0", "}", false, 0))},
		{"bundle-selectors", bundle(repeat(sel.String(), "0", ",", "]}"))},
		{"bundle-escaped-refs", bundle([]byte(refs.String()))},
	}
}

// allocated returns the bytes Validate allocates for payload: the least
// of three runs (an allocation elsewhere can only add), or of fewer if
// one allocates no more than enough.
func allocated(payload []byte, enough uint64) uint64 {
	var least uint64
	for i := 0; i < 3 && (i == 0 || least > enough); i++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_ = Validate(payload)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; i == 0 || n < least {
			least = n
		}
	}
	return least
}

// BenchmarkValidateAdversarial validates 1 MiB payloads built to cost the
// most memory per byte; "alloc/byte" is the bytes allocated per payload
// byte.
func BenchmarkValidateAdversarial(b *testing.B) {
	for _, c := range adversarial(1 << 20) {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.payload)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = Validate(c.payload)
			}
			b.StopTimer()
			b.ReportMetric(float64(allocated(c.payload, 0))/float64(len(c.payload)), "alloc/byte")
		})
	}
}

// TestMemoryBound holds Validate to AllocPerByte and AllocFixed on the
// adversarial payloads at several sizes, and on objects whose key tables
// have just grown (the worst case for them), small and large.
func TestMemoryBound(t *testing.T) {
	check := func(name string, payload []byte) {
		t.Helper()
		limit := AllocPerByte*uint64(len(payload)) + AllocFixed
		if got := allocated(payload, limit); got > limit {
			t.Errorf("%s, %d bytes: allocated %d bytes (%.2f per byte), more than %d",
				name, len(payload), got, float64(got)/float64(len(payload)), limit)
		}
	}
	for _, size := range []int{0, 100, 1 << 10, 4 << 10, 64 << 10} {
		for _, c := range adversarial(size) {
			check(c.name, c.payload)
		}
	}
	var keys strings.Builder
	for k := 3; k <= 13; k++ {
		members := 3<<k/4 + 1
		keys.Reset()
		for i := 0; i < members; i++ {
			if i > 0 {
				keys.WriteString(",")
			}
			keys.WriteString(`"xx` + strconv.Itoa(i) + `":0`)
		}
		check("object of "+strconv.Itoa(members)+" members", []byte("{"+keys.String()+"}"))
		check("STIX object of "+strconv.Itoa(members)+" members", bundleOf(`{"type":"x-a","id":"x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c",`+keys.String()+"}"))
	}
}

// TestNotAnObjectRefusedAtOnce: a payload that does not begin with an
// object is refused with the same error as ever, before it is parsed.
func TestNotAnObjectRefusedAtOnce(t *testing.T) {
	zeros := []byte("[" + strings.Repeat("0,", 1<<20) + "0]")
	for in, kind := range map[string]string{
		string(zeros): "array", `  "bundle"`: "string", "\n-1": "number", "true": "boolean", "null": "null",
		"[1,": "array", // not JSON, but no JSON that begins so is a bundle
	} {
		var e *Error
		if err := Validate([]byte(in)); !errors.As(err, &e) || e.Object != -1 || e.Property != "" ||
			e.Problem != "must be a JSON object (a STIX bundle), got a JSON "+kind {
			t.Errorf("%.20q: %v", in, err)
		}
	}
	if n := testing.AllocsPerRun(10, func() { _ = Validate(zeros) }); n > 2 {
		t.Errorf("a list refused with %v allocations", n)
	}
	// What begins no JSON value is a syntax error, as before.
	for in, want := range map[string]string{
		"":   "bundle: invalid JSON: unexpected end of input (at byte 0)",
		"x":  "bundle: invalid JSON: unexpected character 'x' (at byte 0)",
		" }": "bundle: invalid JSON: unexpected character '}' (at byte 1)",
	} {
		if err := Validate([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", in, err, want)
		}
	}
}

// TestErrorDoesNotAliasPayload: the parser reads strings in place, but an
// error keeps nothing of the payload, which the caller may reuse.
func TestErrorDoesNotAliasPayload(t *testing.T) {
	for _, payload := range [][]byte{
		withIndicator(strings.Replace(specIndicator, `"spec_version": "2.1"`, `"spec_version": "2.0"`, 1)),
		withIndicator(strings.Replace(specIndicator, `"pattern_type": "stix"`, `"pattern_type": "stix", "name": 1`, 1)),
		withIndicator(strings.Replace(specIndicator, `"pattern_type": "stix"`, `"pattern_type": "stix", "x_x": [1,]`, 1)),
		bundleOf(`{"type": "x-a", "id": "x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "created": "yesterday"}`),
	} {
		err := Validate(payload)
		if err == nil {
			t.Fatalf("accepted %s", payload)
		}
		want := err.Error()
		for i := range payload {
			payload[i] = 'X'
		}
		if got := err.Error(); got != want {
			t.Errorf("the error changed with the payload:\n%s\n%s", want, got)
		}
	}
}

func TestAdversarialAreValid(t *testing.T) {
	for _, c := range adversarial(1 << 16) {
		if strings.HasPrefix(c.name, "bundle-") {
			if err := Validate(c.payload); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	}
}
