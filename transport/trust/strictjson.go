package trust

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/hotline-link/hotline/queue"
)

// bundleKeys is every object key of a bundle, spelled as its json tag.
var bundleKeys = sync.OnceValue(func() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
					keys[name] = true
				}
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Bundle]())
	return keys
})

// exactSpelling refuses a bundle whose JSON has an object key that is not
// spelled exactly as a field's tag (encoding/json also matches "Version"
// or "VERSION" to "version"), a key twice in one object (it keeps the
// last), or a precedence not spelled as its name (queue reads "FLASH" as
// flash and "" as routine): any of these would let two different
// documents read as one bundle. The document is already known to be
// valid JSON.
func exactSpelling(data []byte) error {
	known := bundleKeys()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One frame per open object (its keys so far, and whether the next
	// token is a key) or array (no keys).
	type frame struct {
		seen  map[string]bool
		isKey bool
		key   string // of the value that comes next
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.isKey {
				k, _ := tok.(string)
				switch {
				case !known[k]:
					return fmt.Errorf("%w: bundle: key %q is not spelled as any field of a bundle", ErrMalformed, k)
				case top.seen[k]:
					return fmt.Errorf("%w: bundle: key %q twice in one object", ErrMalformed, k)
				}
				top.seen[k], top.isKey, top.key = true, false, k
				continue
			}
			if v, ok := tok.(string); ok && top.key == "precedence" {
				if p, err := queue.ParsePrecedence(v); err != nil || p.String() != v {
					return fmt.Errorf("%w: bundle: precedence %q is not spelled as a precedence's name", ErrMalformed, v)
				}
			}
			// This value ends its pair (a nested one is read before the
			// next key).
			top.isKey = top.seen != nil
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{seen: map[string]bool{}, isKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}
