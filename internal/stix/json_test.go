package stix

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`0`, `-0`, `1.5e+3`, `-12.0E-1`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x10`,
		`"a"`, `"\u00e9\n\"\\\/\b\f\r\t"`, `"\u12"`, `"\x"`, "\"a\tb\"", `"unterminated`,
		`true`, `false`, `null`, `tru`, `nul`, `True`,
		`[]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `{}`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`,
		` {"a" : [ 1 , { } ] } `, `[1] [2]`, `{} x`, ``, ` `, "\ufeff{}",
		`{"a":{"b":{"c":[true,false,null]}}}`,
	} {
		_, serr := parse([]byte(in))
		if got, want := serr == nil, json.Valid([]byte(in)); got != want {
			t.Errorf("%q: parse ok %v, json.Valid %v (%v)", in, got, want, serr)
		}
	}
}

func TestParseRefusals(t *testing.T) {
	for _, c := range []struct{ in, msg, path string }{
		{`{"a":1,"a":2}`, `duplicate key "a"`, "a"},
		{`{"a":1,"\u0061":2}`, `duplicate key "a"`, "a"},
		{`{"x":[{"b":1,"c":2,"b":3}]}`, `duplicate key "b"`, "x[0].b"},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), "", ""},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nesting deeper than 64 levels", strings.Repeat("[0]", MaxDepth)},
		{`{"a":"` + "\xc3\x28" + `"}`, "invalid UTF-8 in string", "a"},
		{`{"a":"` + "\xed\xa0\x80" + `"}`, "invalid UTF-8 in string", "a"}, // an encoded surrogate
		{`{"a":1}` + "\xff", "trailing data after the bundle", ""},
		{`{"a":"x"} 1`, "trailing data after the bundle", ""},
		{`{"a":[1,2,}`, "invalid JSON: unexpected character '}'", "a[2]"},
	} {
		_, serr := parse([]byte(c.in))
		if c.msg == "" {
			if serr != nil {
				t.Errorf("%.40q: %v", c.in, serr.msg)
			}
			continue
		}
		if serr == nil || serr.msg != c.msg || renderPath(serr.path) != c.path {
			t.Errorf("%.40q: got %+v, want %q at %q", c.in, serr, c.msg, c.path)
		}
	}
}

func TestParseTree(t *testing.T) {
	in := `{"s": "a\u00e9b", "n": -1.5, "l": [1, "two", [3]], "o": {"k\"": true}, "z": null}`
	d, serr := parse([]byte(in))
	if serr != nil {
		t.Fatal(serr.msg)
	}
	if d.str(d.get(0, "s")) != "aéb" || d.raw(d.get(0, "n")) != "-1.5" || d.get(0, "missing") != -1 {
		t.Error("scalars")
	}
	l := d.get(0, "l")
	if count(d, l) != 3 || d.str(d.elem(l, 1)) != "two" || d.kind(d.elem(l, 2)) != kArray || d.elem(l, 3) != -1 {
		t.Error("list")
	}
	o := d.get(0, "o")
	if k := d.first(o); d.key(k) != `k"` || d.raw(k) != "true" {
		t.Error("escaped key")
	}
	if d.kind(d.get(0, "z")) != kNull {
		t.Error("null")
	}
	// Many members and elements use the indexes.
	var b strings.Builder
	b.WriteString(`{"l": [`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(itoa(i))
	}
	b.WriteString("]")
	for i := 0; i < 100; i++ {
		b.WriteString(`, "k` + itoa(i) + `": ` + itoa(i))
	}
	b.WriteString("}")
	d, serr = parse([]byte(b.String()))
	if serr != nil {
		t.Fatal(serr.msg)
	}
	for i := 0; i < 100; i++ {
		if d.raw(d.get(0, "k"+itoa(i))) != itoa(i) || d.raw(d.elem(d.get(0, "l"), i)) != itoa(i) {
			t.Fatalf("lookup %d", i)
		}
	}
}

// FuzzParse holds the parser to encoding/json: what it accepts is valid
// JSON, and valid JSON in UTF-8 is accepted unless it nests too deeply or
// repeats a key.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c"}]}`, `[1e5,-0.5,"\u0041"]`, `{"a":1,"a":2}`, `"x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, serr := parse(b)
		valid := json.Valid(b)
		if serr == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if serr != nil && valid && utf8.Valid(b) &&
			!strings.HasPrefix(serr.msg, "nesting deeper") && !strings.HasPrefix(serr.msg, "duplicate key") {
			t.Fatalf("refused valid JSON %q: %s", b, serr.msg)
		}
	})
}

// count returns how many elements or members container a has.
func count(d *doc, a int32) int {
	n := 0
	for c := d.first(a); c >= 0; c = d.next(a, c) {
		n++
	}
	return n
}

func TestUnescapeAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`a\u00e9b`, `\n\"\\\/\b\f\r\t`, `\u0000`, `\ud83d\ude00`, `\ud83d`, `\ud83dx`, `\ude00\ud83d`,
		`\ud83d\u0041`, `\ud83d\ud83d\ude00`, `\uDBFF\uDFFF`, `\uD800\\u`, `é\u20ac€`, ``,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+in+`"`), &want); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := unescape([]byte(in)); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

// TestParseManyMembers covers objects past smallObject members, whose
// keys go through a table: duplicates (escaped or not), lookups, and the
// object's id in an error found inside it.
func TestParseManyMembers(t *testing.T) {
	members := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(`"k` + itoa(i) + `": ` + itoa(i) + `, `)
		}
		return b.String()
	}
	for _, n := range []int{smallObject, smallObject + 1, 100, 1000} {
		_, serr := parse([]byte(`{"x": {` + members(n) + `"k\u0035": 1}}`))
		if serr == nil || serr.msg != `duplicate key "k5"` || renderPath(serr.path) != "x.k5" {
			t.Errorf("%d members: %+v", n, serr)
		}
		d, serr := parse([]byte(`{"x": {` + members(n) + `"\u006bey": "v", "last": [{}]}}`))
		if serr != nil {
			t.Fatalf("%d members: %s", n, serr.msg)
		}
		x := d.get(0, "x")
		if d.str(d.get(x, "key")) != "v" || d.raw(d.get(x, "k"+itoa(n-1))) != itoa(n-1) ||
			d.get(x, "k"+itoa(n)) != -1 || d.kind(d.get(x, "last")) != kArray || count(d, x) != n+2 {
			t.Errorf("%d members: lookups", n)
		}
	}
	// A syntax error inside a STIX object of many members names it.
	var e *Error
	payload := bundleOf(`{"type": "x-a", "id": "x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", ` + members(40) + `"x_b": [1,]}`)
	if err := Validate(payload); !errors.As(err, &e) || e.Object != 0 || e.ID != "x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c" ||
		e.Property != "x_b[1]" || !strings.HasPrefix(e.Problem, "invalid JSON: unexpected character ']'") {
		t.Errorf("got %v", err)
	}
}

// FuzzUnescape holds the decoding of strings with escapes to
// encoding/json's.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`\u00e9`, `\ud83d\ude00`, `\ud83d\u0041`, `a\nb`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		quoted := []byte(`"` + in + `"`)
		var want string
		if _, serr := parse(quoted); serr != nil || json.Unmarshal(quoted, &want) != nil {
			return
		}
		if got := unescape([]byte(in)); got != want {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
	})
}
