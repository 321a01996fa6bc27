package daemon

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseQuery checks that the strict query parser never panics, and
// that whatever it accepts is well-formed: only allowed names, printable
// UTF-8 names and values.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"to=bravo&precedence=flash&id=order-42&ttl=1h&wait=delivered&timeout=5s",
		"to=bravo&id=order-42%zz", "ttl=1h%", "to=bravo;id=x", "to=a&to=b", "id=%1B%5B31m", "id=%FF",
		"after=18446744073709551615&max=1000&max_bytes=4194304&wait=30s", "&&to=&", "id=a%E2%80%AEb", "+=+",
	} {
		f.Add(s)
	}
	allowed := routeParams["POST /v1/messages"]
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw, allowed)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for k, v := range q {
			if printable(k) != nil || printable(v) != nil || !utf8.ValidString(v) {
				t.Fatalf("accepted %q=%q", k, v)
			}
			if !strings.Contains(strings.Join(allowed, ","), k) {
				t.Fatalf("accepted unknown parameter %q", k)
			}
		}
	})
}

// FuzzReadAck checks that the ack body reader never panics and returns
// 1 to maxAckIDs distinct, non-empty ids of at most 255 bytes.
func FuzzReadAck(f *testing.F) {
	for _, s := range []string{
		`{"ids": ["a", "b", "a"]}`, `{"ids": ["a"]} junk`, `{"ids": []}`, `{"ids": null}`, `{"ids": ["a"], "x": 1}`,
		`{"ids": [""]}`, `[]`, `{"ids": ["\u001b[31m"]}`, `{"ids":["a"]}{"ids":["b"]}`, `{"ids": ["a"]}   `,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/v1/inbox/ack", strings.NewReader(body))
		ids, err := readAck(httptest.NewRecorder(), r)
		if err != nil {
			return
		}
		if len(ids) == 0 || len(ids) > maxAckIDs {
			t.Fatalf("%d ids accepted", len(ids))
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if id == "" || len(id) > 255 || seen[id] {
				t.Fatalf("accepted id %q (seen before: %v)", id, seen[id])
			}
			seen[id] = true
		}
	})
}
