package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"hotline/daemon/client"
	"hotline/queue"
)

// startSite starts only site's three nodes of the lab (the other site's
// nodes are configured but never started) and waits for its leader.
func startSite(t testing.TB, site string, opts ...func(*Config)) *testLab {
	t.Helper()
	dir := t.TempDir()
	if err := EnsureLabPKI(dir); err != nil {
		t.Fatal(err)
	}
	cfgs := LabConfigs(dir, []string{"fiber"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return freeAddr(t, ip), map[string]string{"fiber": freeAddr(t, ip)}
	})
	lab := &testLab{t: t, dir: dir, cfgs: map[string]*Config{}, nodes: map[string]*Node{}}
	t.Cleanup(func() {
		for _, n := range lab.nodes {
			n.Close()
		}
	})
	for _, c := range cfgs {
		c.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
		c.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
		c.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
		c.LogLevel = "error" // the other site is never up: no dial errors in the log
		for _, o := range opts {
			o(c)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		lab.cfgs[c.Node] = c
		if c.Site == site {
			lab.start(c.Node)
		}
	}
	lab.leader(site)
	return lab
}

// follower returns a node of site that is not its leader.
func (l *testLab) follower(site string) string {
	leader := l.leader(site)
	for _, n := range LabNodes(site) {
		if n != leader {
			return n
		}
	}
	return ""
}

// receive commits inbound messages from origin into site's inbox through
// Raft, as the receiver does for a batch from the link.
func (l *testLab) receive(t testing.TB, site, origin string, msgs ...queue.Message) *queue.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := l.nodes[l.leader(site)]
	res, err := n.proposeRYW(ctx, &queue.Command{Op: queue.OpReceive, Time: time.Now().UnixNano(),
		Receive: &queue.Receive{Origin: origin, Precedence: msgs[0].Precedence, Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitUnread waits until the node of c shows want unread inbox messages
// and returns its status.
func waitUnread(t testing.TB, c *client.Client, want int) *client.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err == nil && st.InboxUnread == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: inbox unread is not %d after 30s (%+v, %v)", c.Socket(), want, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawClient is an HTTP client of a node's socket that sends requests as
// written, without the Go client's encoding.
func rawClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

type rawReply struct {
	status int
	header http.Header
	err    client.Error
	body   []byte
}

func rawDo(t testing.TB, hc *http.Client, method, target, body string) rawReply {
	t.Helper()
	req, err := http.NewRequest(method, "http://hotline"+target, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := rawReply{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.err)
	return r
}

// TestAPIStrictParams sends malformed, unknown, repeated and overflowing
// parameters, wrong methods and bad ack bodies: each is refused with the
// expected status and code and a message naming what was wrong, and
// nothing is stored.
func TestAPIStrictParams(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	node := lab.follower("alpha")
	hc := rawClient(lab.cfgs[node].Socket)
	c := lab.client(node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One unread message in the inbox, to acknowledge below.
	lab.receive(t, "alpha", "bravo", queue.Message{ID: "in-1", Origin: "bravo", Dest: "alpha", Seq: 1, Payload: []byte("hello"), SubmittedAt: time.Now().UnixNano()})
	before := waitUnread(t, c, 1)
	many := `{"ids": [` + strings.Repeat(`"in-1",`, 100_000) + `"in-1"]}`
	tests := []struct {
		name, method, target, body string
		status                     int
		code, text                 string
	}{
		{"bad escape in id", "POST", "/v1/messages?to=bravo&id=order-42%zz", "x", 400, client.CodeBadRequest, `id="order-42%zz": malformed value`},
		{"bad escape in ttl", "POST", "/v1/messages?to=bravo&ttl=1h%", "x", 400, client.CodeBadRequest, `ttl="1h%": malformed value`},
		{"bad escape in name", "POST", "/v1/messages?to=bravo&t%zzl=1h", "x", 400, client.CodeBadRequest, `"t%zzl": malformed name`},
		{"ttl overflows", "POST", "/v1/messages?to=bravo&ttl=2100000h", "x", 400, client.CodeBadRequest, `ttl="2100000h" is over the limit of 8760h`},
		{"ttl not a duration", "POST", "/v1/messages?to=bravo&ttl=99999999999999999999h", "x", 400, client.CodeBadRequest, `ttl="99999999999999999999h" is not a duration`},
		{"negative ttl", "POST", "/v1/messages?to=bravo&ttl=-1s", "x", 400, client.CodeBadRequest, `ttl="-1s"`},
		{"timeout over limit", "POST", "/v1/messages?to=bravo&timeout=2h", "x", 400, client.CodeBadRequest, `timeout="2h" is over the limit`},
		{"repeated to", "POST", "/v1/messages?to=bravo&to=charlie", "x", 400, client.CodeBadRequest, "to is given more than once"},
		{"repeated id", "POST", "/v1/messages?to=bravo&id=a&id=a", "x", 400, client.CodeBadRequest, "id is given more than once"},
		{"unknown parameter", "POST", "/v1/messages?to=bravo&colour=red", "x", 400, client.CodeBadRequest, `unknown query parameter "colour"`},
		{"semicolon", "POST", "/v1/messages?to=bravo;id=k", "x", 400, client.CodeBadRequest, "contains ';'"},
		{"CR LF in id", "POST", "/v1/messages?to=bravo&id=a%0D%0Ab", "x", 400, client.CodeBadRequest, "query parameter id: value \"a\\r\\nb\" contains a control character"},
		{"ESC in id", "POST", "/v1/messages?to=bravo&id=%1B%5B31m", "x", 400, client.CodeBadRequest, "control character"},
		{"bidi override in id", "POST", "/v1/messages?to=bravo&id=a%E2%80%AEb", "x", 400, client.CodeBadRequest, "control character"},
		{"invalid UTF-8 in id", "POST", "/v1/messages?to=bravo&id=%FF%FE", "x", 400, client.CodeBadRequest, "not valid UTF-8"},
		{"bad wait", "POST", "/v1/messages?to=bravo&wait=forever", "x", 400, client.CodeBadRequest, `wait="forever"`},
		{"bad drill", "POST", "/v1/messages?to=bravo&drill=maybe", "x", 400, client.CodeBadRequest, `drill="maybe"`},
		{"inbox after wraps", "GET", "/v1/inbox?after=18446744073709551615", "", 400, client.CodeBadRequest, `after="18446744073709551615" is not a number from 0 to 9223372036854775807`},
		{"inbox after negative", "GET", "/v1/inbox?after=-1", "", 400, client.CodeBadRequest, `after="-1"`},
		{"inbox max 0", "GET", "/v1/inbox?max=0", "", 400, client.CodeBadRequest, `max="0" is not a number from 1 to 1000`},
		{"inbox max overflows", "GET", "/v1/inbox?max=99999999999999999999", "", 400, client.CodeBadRequest, `max="99999999999999999999"`},
		{"inbox max_bytes 0", "GET", "/v1/inbox?max_bytes=0", "", 400, client.CodeBadRequest, `max_bytes="0" is not a number from 1 to 16777216`},
		{"inbox max_bytes over", "GET", "/v1/inbox?max_bytes=16777217", "", 400, client.CodeBadRequest, `max_bytes="16777217"`},
		{"inbox wait over", "GET", "/v1/inbox?wait=6m", "", 400, client.CodeBadRequest, `wait="6m" is over the limit of 5m0s`},
		{"inbox unknown", "GET", "/v1/inbox?limit=5", "", 400, client.CodeBadRequest, `unknown query parameter "limit" (this endpoint takes: after, max, max_bytes, wait)`},
		{"status with parameter", "GET", "/v1/status?verbose=1", "", 400, client.CodeBadRequest, `unknown query parameter "verbose" (this endpoint takes: none)`},
		{"admin repeated node", "GET", "/v1/admin/paths?node=alpha-1&node=alpha-2", "", 400, client.CodeBadRequest, "node is given more than once"},
		{"ack trailing junk", "POST", "/v1/inbox/ack", `{"ids": ["in-1"]} junk`, 400, client.CodeBadRequest, "there is more after it"},
		{"ack two objects", "POST", "/v1/inbox/ack", `{"ids": ["in-1"]}{"ids": ["in-1"]}`, 400, client.CodeBadRequest, "there is more after it"},
		{"ack unknown field", "POST", "/v1/inbox/ack", `{"ids": ["in-1"], "all": true}`, 400, client.CodeBadRequest, `unknown field "all"`},
		{"ack no ids", "POST", "/v1/inbox/ack", `{"ids": []}`, 400, client.CodeBadRequest, "no ids"},
		{"ack empty id", "POST", "/v1/inbox/ack", `{"ids": ["in-1", ""]}`, 400, client.CodeBadRequest, "ids[1] is empty"},
		{"ack long id", "POST", "/v1/inbox/ack", `{"ids": ["` + strings.Repeat("x", 256) + `"]}`, 400, client.CodeBadRequest, "ids[0] is 256 bytes"},
		{"ack 100,001 copies", "POST", "/v1/inbox/ack", many, 400, client.CodeBadRequest, "100001 ids in one ack; at most 1000"},
		{"ack over 2 MiB", "POST", "/v1/inbox/ack", `{"ids": ["` + strings.Repeat("x", 3<<20) + `"]}`, 413, client.CodeTooLarge, "larger than 2097152 bytes"},
		{"wrong method on status", "POST", "/v1/status", "", 405, client.CodeMethodNotAllowed, "method POST is not allowed on \"/v1/status\" (allowed: GET, HEAD)"},
		{"wrong method on submit", "DELETE", "/v1/messages", "", 405, client.CodeMethodNotAllowed, "allowed: POST"},
		{"wrong method on ack", "GET", "/v1/inbox/ack", "", 405, client.CodeMethodNotAllowed, "allowed: POST"},
		{"wrong method on a message", "PUT", "/v1/messages/x", "x", 405, client.CodeMethodNotAllowed, "allowed: GET, HEAD"},
		{"no endpoint", "GET", "/v1/nothing", "", 404, client.CodeNotFound, `no endpoint GET "/v1/nothing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawDo(t, hc, tt.method, tt.target, tt.body)
			if r.status != tt.status || r.err.Code != tt.code || !strings.Contains(r.err.Error, tt.text) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", r.status, r.err.Code, r.err.Error, tt.status, tt.code, tt.text)
			}
			if tt.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without an Allow header")
			}
		})
	}

	// Nothing stored: no outbound message, no key, the inbox untouched.
	after, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Outbound) != len(before.Outbound) || after.InboxUnread != before.InboxUnread || after.InboxUnread != 1 {
		t.Fatalf("refused requests changed the state: outbound %+v → %+v, unread %d → %d", before.Outbound, after.Outbound, before.InboxUnread, after.InboxUnread)
	}
	for _, k := range []string{"order-42%zz", "order-42", "k", "a"} {
		if _, err := lab.nodes[node].store.LookupKey(k); err == nil {
			t.Fatalf("key %q was stored", k)
		}
	}

	// Duplicates in an ack are folded: one mark, one receipt.
	r := rawDo(t, hc, "POST", "/v1/inbox/ack", `{"ids": ["in-1", "in-1", "in-1"]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"acked": 1`) {
		t.Fatalf("ack of one id three times: %d %s", r.status, r.body)
	}
	if st, _ := c.Status(ctx); st.InboxUnread != 0 || st.ReceiptsPending != 1 {
		t.Fatalf("after the ack: unread %d, receipts pending %d; want 0 and 1", st.InboxUnread, st.ReceiptsPending)
	}
}
