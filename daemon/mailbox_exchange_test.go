package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// TestMailboxListRoundTrip: what a site serves is what another site
// keeps, and the origin's refusals follow it.
func TestMailboxListRoundTrip(t *testing.T) {
	m, err := newMailboxes([]MailboxConfig{
		{Name: "cert", Send: []string{"*"}, Types: []string{"text/plain", "application/stix+json;version=2.1"}},
		{Name: "watch", Objectives: map[string]Duration{"flash": {Duration: 2 * time.Minute}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	body, err := serveMailboxes(&Config{mbox: m})
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := decodeMailboxList(body)
	if err != nil {
		t.Fatalf("decoding our own list %s: %v", body, err)
	}
	if got, want := describeMailboxes(boxes), "cert (types: text/plain, application/stix+json; version=2.1), default, watch (objectives: flash 2m0s)"; got != want {
		t.Errorf("list %q, want %q", got, want)
	}
	r := newRemoteMailboxes()
	if code, _ := r.refuse("bravo", "nosuch", ""); code != "" {
		t.Errorf("a site not heard from: refused with %s; want accepted", code)
	}
	r.set("bravo", boxes)
	if got := r.objective("bravo", "watch", queue.Flash); got != 2*time.Minute {
		t.Errorf("objective of bravo/watch flash %v, want 2m", got)
	}
	for _, tc := range []struct {
		box, typ string
		code     string
		msg      string
	}{
		{"nosuch", "", client.CodeUnknownMailbox, `site bravo has no mailbox "nosuch" (its mailboxes: cert, default, watch)`},
		{"", "anything/at-all", "", ""},
		{"watch", "", "", ""},
		{"cert", "TEXT/Plain", "", ""},
		{"cert", `application/stix+json; version="2.1"`, "", ""},
		{"cert", "", client.CodeTypeNotAllowed, `mailbox bravo/cert does not take type "application/octet-stream" (it takes: text/plain, application/stix+json; version=2.1)`},
		{"cert", "application/json", client.CodeTypeNotAllowed, `does not take type "application/json"`},
	} {
		code, msg := r.refuse("bravo", tc.box, tc.typ)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("refuse(bravo/%s, %q) = %s %q; want %s %q", tc.box, tc.typ, code, msg, tc.code, tc.msg)
		}
	}
}

// TestMailboxListRefused: a list that is not valid or not within bounds
// is refused whole, naming what is wrong.
func TestMailboxListRefused(t *testing.T) {
	many := mailboxList{}
	for i := range maxRemoteMailboxes + 1 {
		many.Mailboxes = append(many.Mailboxes, mailboxInfo{Name: fmt.Sprintf("m%d", i)})
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct {
		body string
		want string
	}{
		{`{"mailboxes":`, "list:"},
		{`{"mailboxes":[]}`, `no mailbox "default"`},
		{`{"mailboxes":[{"name":"cert"}]}`, `no mailbox "default"`},
		{`{"mailboxes":[{"name":""}]}`, `mailbox "": not a valid name`},
		{`{"mailboxes":[{"name":"Cert"}]}`, `mailbox "Cert": not a valid name`},
		{`{"mailboxes":[{"name":"a/b"}]}`, `mailbox "a/b": not a valid name`},
		{`{"mailboxes":[{"name":"cert"},{"name":"cert"}]}`, `mailbox "cert" listed twice`},
		{`{"mailboxes":[{"name":"cert","types":[""]}]}`, `type "" is not a valid media type`},
		{`{"mailboxes":[{"name":"cert","types":["text"]}]}`, `type "text" is not a valid media type`},
		{`{"mailboxes":[{"name":"cert","objectives":{"urgent":"1m"}}]}`, `objective of "urgent", not a precedence`},
		{`{"mailboxes":[{"name":"cert","objectives":{"flash":"1ms"}}]}`, `objective flash = "1ms" is not a duration from 1s to 720h`},
		{`{"mailboxes":[{"name":"cert","objectives":{"flash":"soon"}}]}`, `objective flash = "soon"`},
		{string(manyJSON), "1025 mailboxes (at most 1024)"},
		{`{"mailboxes":[]}` + strings.Repeat(" ", maxMailboxListSize), "bytes (at most 1048576)"},
	} {
		_, err := decodeMailboxList([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			body := tc.body
			if len(body) > 80 {
				body = body[:80] + "..."
			}
			t.Errorf("decode %s: %v; want an error containing %q", body, err, tc.want)
		}
	}
	many.Mailboxes = []mailboxInfo{{Name: "cert", Types: make([]string, maxRemoteTypes+1)}}
	for i := range many.Mailboxes[0].Types {
		many.Mailboxes[0].Types[i] = "text/plain"
	}
	b, _ := json.Marshal(many)
	if _, err := decodeMailboxList(b); err == nil || !strings.Contains(err.Error(), "65 types (at most 64)") {
		t.Errorf("65 types: %v", err)
	}
}

// TestUnconfiguredMailboxes: a mailbox holding messages that the config
// does not name is reported; configured ones, empty ones are not.
func TestUnconfiguredMailboxes(t *testing.T) {
	m, err := newMailboxes([]MailboxConfig{{Name: "cert"}})
	if err != nil {
		t.Fatal(err)
	}
	got := unconfiguredMailboxes(map[string]int{"cert": 2, "default": 1, "watch": 3, "old": 1, "empty": 0}, m)
	if want := []string{"old", "watch"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("unconfigured %v, want %v", got, want)
	}
	if got, want := unconfiguredWords("watch", 3), "mailbox watch is not configured: 3 unread messages wait for it; root can read them with hotlinectl recv --mailbox watch"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
