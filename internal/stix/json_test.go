package stix

import (
	"encoding/json"
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
	if d.nodes[l].n != 3 || d.str(d.elem(l, 1)) != "two" || d.nodes[d.elem(l, 2)].kind != kArray || d.elem(l, 3) != -1 {
		t.Error("list")
	}
	o := d.get(0, "o")
	if k := d.nodes[o].first; d.key(k) != `k"` || d.raw(k) != "true" {
		t.Error("escaped key")
	}
	if d.nodes[d.get(0, "z")].kind != kNull {
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
