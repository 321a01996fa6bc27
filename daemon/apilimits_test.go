package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
	"github.com/hotline-link/hotline/queue"
)

// startSite starts only site's three nodes of the lab (the other site's
// nodes are configured but never started) and waits for its leader.
func startSite(t testing.TB, site string, opts ...func(*daemon.Config)) *clustertest.Lab {
	t.Helper()
	dir := t.TempDir()
	if err := daemon.EnsureLabPKI(dir); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigs(dir, []string{"fiber"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return clustertest.FreeAddr(t, ip), map[string]string{"fiber": clustertest.FreeAddr(t, ip)}
	})
	lab := clustertest.New(t, dir, daemon.LabSites)
	for _, c := range cfgs {
		clustertest.ShortTimeouts(c)
		c.LogLevel = "error" // the other site is never up: no dial errors in the log
		lab.Add(c, opts...)
		if c.Site == site {
			lab.StartNode(c.Node)
		}
	}
	lab.Leader(site)
	return lab
}

// receive commits inbound messages from origin into site's inbox through
// Raft, as the receiver does for a batch from the link.
func receive(t testing.TB, l *clustertest.Lab, site, origin string, msgs ...queue.Message) *queue.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// Proposed on the leader itself: a node relaying it would have
		// the leader check it as an inbound batch, and these payloads
		// are not sealed. So a leader change in between is retried on
		// the new leader (the command is idempotent).
		leader := l.Leader(site)
		res, err := daemon.ProposeRYW(l.Node(leader), ctx, &queue.Command{Op: queue.OpReceive, Time: time.Now().UnixNano(),
			Receive: &queue.Receive{Origin: origin, Precedence: msgs[0].Precedence, Messages: msgs}})
		if err != nil && ctx.Err() == nil && l.Leader(site) != leader {
			t.Logf("leader changed from %s while receiving: %v; again", leader, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
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
	node := lab.Follower("alpha")
	hc := rawClient(lab.Configs[node].Socket)
	c := lab.Client(node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One unread message in the inbox, to acknowledge below.
	receive(t, lab, "alpha", "bravo", queue.Message{ID: "in-1", Origin: "bravo", Dest: "alpha", Seq: 1, Payload: []byte("hello"), SubmittedAt: time.Now().UnixNano()})
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
		{"inbox unknown", "GET", "/v1/inbox?limit=5", "", 400, client.CodeBadRequest, `unknown query parameter "limit" (this endpoint takes: after, max, max_bytes, wait, mailbox)`},
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
		if _, err := daemon.StoreOf(lab.Node(node)).LookupKey(k); err == nil {
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

// TestSubmitWaitTimeoutIsNotAFailure submits through a follower with a
// wait that cannot be met in time (the destination site is down, the
// timeout 1ms): the reply is 202 with the id and the state reached, the
// message is stored once, and hotlinectl send prints the id and exits 3.
func TestSubmitWaitTimeoutIsNotAFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	node := lab.Follower("alpha")
	hc := rawClient(lab.Configs[node].Socket)
	leader := lab.Client(lab.Leader("alpha"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for i := range 5 {
		r := rawDo(t, hc, "POST", "/v1/messages?to=bravo&wait=delivered&timeout=1ms", fmt.Sprintf("m%d", i))
		var m client.Message
		if err := json.Unmarshal(r.body, &m); err != nil || r.status != http.StatusAccepted || m.ID == "" || !m.WaitTimedOut || m.State != "queued" || m.Seq != uint64(i+1) {
			t.Fatalf("submit %d with an unmet wait: %d %s", i, r.status, r.body)
		}
		// Committed: any node finds it (the leader applied it before answering).
		if got, err := leader.Get(ctx, m.ID); err != nil || got.State != "queued" {
			t.Fatalf("message %s of a 202 reply: %+v, %v", m.ID, got, err)
		}
	}
	// wait=queued is met by the commit itself, even with a 1ms timeout.
	r := rawDo(t, hc, "POST", "/v1/messages?to=bravo&timeout=1ms", "q")
	if r.status != http.StatusCreated || strings.Contains(string(r.body), "wait_timed_out") {
		t.Fatalf("submit with wait=queued, timeout=1ms: %d %s", r.status, r.body)
	}

	// The CLI prints the id and exits 3, so a script knows not to resend.
	out, err := lab.Hotlinectl(t, node, "cli", "send", "--to", "bravo", "--wait", "delivered", "--timeout", "1ms")
	id := strings.TrimSpace(out)
	if code := ctlExitCode(err); code != 3 || id == "" || !strings.Contains(err.Error(), "is still queued") {
		t.Fatalf("send with an unmet wait: exit %d, out %q, err %v", code, out, err)
	}
	if _, err := leader.Get(ctx, id); err != nil {
		t.Fatalf("printed id %s: %v", id, err)
	}
	st, err := leader.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Outbound) != 1 || st.Outbound[0].Last != 7 {
		t.Fatalf("outbound %+v, want 7 messages stored once each", st.Outbound)
	}
}

// TestSubmitWaitersBusy fills the node's waiting places: a further submit
// with a wait is refused before anything is stored, a long-poll too.
func TestSubmitWaitersBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	daemon.SetAPILimits(t, func(l *daemon.SocketLimits) { l.MaxWaiters = 3 })
	lab := startSite(t, "alpha")
	node := lab.Follower("alpha")
	sock := lab.Configs[node].Socket
	api := lab.Node(node)
	var held []net.Conn
	for range 3 {
		held = append(held, longPoll(t, sock, daemon.StoreOf(lab.Node(node)).InboxLast()))
	}
	clustertest.Eventually(t, 30*time.Second, "3 parked long-polls", func() bool { return daemon.Waiters(api) == 3 })
	hc := rawClient(sock)
	r := rawDo(t, hc, "POST", "/v1/messages?to=bravo&wait=delivered&timeout=1m", "x")
	if r.status != 503 || r.err.Code != client.CodeBusy || !strings.Contains(r.err.Error, "3 requests are already waiting") {
		t.Fatalf("submit with wait while full: %d %s", r.status, r.body)
	}
	r = rawDo(t, hc, "GET", "/v1/inbox?wait=1m", "")
	if r.status != 503 || r.err.Code != client.CodeBusy {
		t.Fatalf("long-poll while full: %d %s", r.status, r.body)
	}
	// Answers that need no wait still work, and nothing was stored.
	if st, err := lab.Client(node).Status(context.Background()); err != nil || len(st.Outbound) != 0 {
		t.Fatalf("status while full: %+v, %v", st, err)
	}
	for _, c := range held {
		c.Close()
	}
	clustertest.Eventually(t, 30*time.Second, "the long-polls to end", func() bool { return daemon.Waiters(api) == 0 })
}

// ctlExitCode is hotlinectl's exit status for err.
func ctlExitCode(err error) int { return ctl.ExitCode(err) }

// longPoll opens a connection to sock and sends an inbox long-poll for
// messages after `after`, which the node parks; the caller closes it.
func longPoll(t testing.TB, sock string, after uint64) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /v1/inbox?after=%d&wait=5m HTTP/1.1\r\nHost: hotline\r\n\r\n", after)
	return c
}

// TestInboxReadMemory puts 40 unread 1 MiB messages in an inbox and lets
// 8 readers read all of it at once, again and again, each asking for up to
// 1000 messages: the heap grows by no more than the documented budget
// (inbox replies: InboxBudget, 32 MiB, for all readers together), where
// reading whole inboxes took about 40 MiB per reader for the messages
// plus twice that for their JSON. Each reply holds at most max_bytes of
// messages, or one message when that alone is larger.
func TestInboxReadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const (
		nMsgs   = 40
		size    = 1 << 20
		readers = 8
		passes  = 3
	)
	lab := startSite(t, "alpha", func(c *daemon.Config) { c.MaxMessageSize = 2 << 20 })
	node := lab.Follower("alpha")
	payload := strings.Repeat("p", size)
	for i := range nMsgs {
		receive(t, lab, "alpha", "bravo", queue.Message{ID: fmt.Sprintf("big-%02d", i), Origin: "bravo", Dest: "alpha", Seq: uint64(i + 1),
			Payload: []byte(payload), SubmittedAt: time.Now().UnixNano()})
	}
	waitUnread(t, lab.Client(node), nMsgs)

	// Replies are bounded in bytes: 4 MiB by default, one message at least.
	c := lab.Client(node)
	ctx := context.Background()
	for _, tc := range []struct {
		maxBytes int64
		want     int
	}{{0, 3}, {1000, 1}, {2*size + 100, 2}, {16 << 20, 15}} {
		in, err := c.ReadInbox(ctx, client.InboxRequest{Max: 1000, MaxBytes: tc.maxBytes})
		if err != nil || len(in.Messages) != tc.want || len(in.Messages[0].Payload) != size {
			t.Fatalf("inbox with max_bytes %d: %d messages (want %d), %v", tc.maxBytes, len(in.Messages), tc.want, err)
		}
	}

	sock := lab.Configs[node].Socket
	old := debug.SetGCPercent(10) // keep garbage small, so the heap tracks what is live
	defer debug.SetGCPercent(old)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}()
	errs := make(chan error, readers)
	for range readers {
		go func() { errs <- readWholeInbox(sock, nMsgs, passes) }()
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	<-sampled
	growth := int64(peak) - int64(base)
	budget := daemon.APILimits().InboxBudget
	t.Logf("heap %d MiB before, peak %d MiB while %d readers read %d × 1 MiB %d times each: +%d MiB (budget %d MiB)",
		base>>20, peak>>20, readers, nMsgs, passes, growth>>20, budget>>20)
	if growth > 2*budget {
		t.Fatalf("inbox reads grew the heap by %d MiB, over twice the %d MiB budget", growth>>20, budget>>20)
	}
}

// readWholeInbox reads every unread message of the inbox passes times
// over its own connection, asking for up to 1000 per reply, and discards
// the replies as they stream in (so that the reader itself holds no
// memory): only the count of messages and the `next` at the end are kept.
func readWholeInbox(sock string, want, passes int) error {
	hc := rawClient(sock)
	for range passes {
		var after uint64
		got := 0
		for got < want {
			resp, err := hc.Get(fmt.Sprintf("http://hotline/v1/inbox?after=%d&max=1000", after))
			if err != nil {
				return err
			}
			var s scanReply
			_, err = io.Copy(&s, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				return fmt.Errorf("inbox after %d: %d, %v", after, resp.StatusCode, err)
			}
			next, n := s.result()
			if n == 0 {
				return fmt.Errorf("inbox after %d: no message, want %d more", after, want-got)
			}
			got += n
			after = next
		}
	}
	return nil
}

// scanReply counts the messages of an inbox reply as it streams by and
// keeps its tail, where `next` is.
type scanReply struct {
	ids  int
	tail []byte
}

func (s *scanReply) Write(p []byte) (int, error) {
	s.tail = append(s.tail, p...)
	s.ids += strings.Count(string(s.tail), `"id":`) // the tail is short: no id is counted twice
	if n := len(s.tail); n > 64 {
		s.tail = append(s.tail[:0], s.tail[n-64:]...)
		s.ids -= strings.Count(string(s.tail), `"id":`)
	}
	return len(p), nil
}

func (s *scanReply) result() (next uint64, n int) {
	_, rest, _ := strings.Cut(string(s.tail), `"next": `)
	fmt.Sscan(rest, &next)
	return next, s.ids
}

// TestSocketLimits checks the local socket's connection cap and timeouts
// (lowered for the test): connections over the cap wait in the kernel's
// backlog and take no descriptor in the node, the node answers again once
// the others close, and a connection that is slow to send its headers or
// body, or idle, is closed after the timeout.
func TestSocketLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const maxConns = 8
	daemon.SetAPILimits(t, func(l *daemon.SocketLimits) {
		l.MaxConns, l.MaxWaiters = maxConns, maxConns
		l.HeaderTimeout, l.BodyTimeout, l.IdleTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	})
	lab := startSite(t, "alpha")
	node := lab.Follower("alpha")
	sock := lab.Configs[node].Socket
	api := lab.Node(node)

	// closedWithin reads c until the node closes it; false if it is still
	// open after d. It returns what was read.
	closedWithin := func(c net.Conn, d time.Duration) (string, bool) {
		c.SetReadDeadline(time.Now().Add(d))
		b, err := io.ReadAll(c)
		var ne net.Error
		return string(b), !(errors.As(err, &ne) && ne.Timeout())
	}
	dial := func() net.Conn {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("slow header", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: hot")
		if _, closed := closedWithin(c, 5*time.Second); !closed {
			t.Fatal("a connection that never finished its headers is still open after 5s")
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: hotline\r\n\r\n")
		out, closed := closedWithin(c, 5*time.Second)
		if !closed || !strings.HasPrefix(out, "HTTP/1.1 200") {
			t.Fatalf("idle keep-alive connection: closed %v after %q", closed, out)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "POST /v1/messages?to=bravo&id=slow HTTP/1.1\r\nHost: hotline\r\nContent-Length: 100\r\n\r\n0123456789")
		out, closed := closedWithin(c, 5*time.Second)
		if !closed || !strings.HasPrefix(out, "HTTP/1.1 400") || !strings.Contains(out, "timeout") {
			t.Fatalf("a body that stops halfway: closed %v after %q", closed, out)
		}
		if _, err := daemon.StoreOf(lab.Node(node)).LookupKey("slow"); err == nil {
			t.Fatal("the message with the slow body was stored")
		}
	})

	t.Run("connection cap", func(t *testing.T) {
		// Fill every place with long-polls, which hold their connection.
		var polls []net.Conn
		for range maxConns {
			polls = append(polls, longPoll(t, sock, daemon.StoreOf(lab.Node(node)).InboxLast()))
		}
		clustertest.Eventually(t, 30*time.Second, "parked long-polls", func() bool { return daemon.Waiters(api) == maxConns })
		// 200 more clients: each takes a descriptor on the client side
		// (this process), none in the node while the cap is reached.
		before := openFDs(t)
		var extra []net.Conn
		for range 200 {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("dial over the cap: %v", err)
			}
			extra = append(extra, c)
		}
		if grew := openFDs(t) - before; grew > 200+2 {
			t.Fatalf("200 connections over the cap took %d descriptors in this process: the node accepted them", grew)
		}
		// A client over the cap is not answered while the cap holds...
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c := lab.Client(node)
		if _, err := c.Status(ctx); err == nil {
			t.Fatal("a client over the connection cap was answered while the cap was reached")
		}
		// ...and is once the others close.
		for _, c := range append(polls, extra...) {
			c.Close()
		}
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Status(ctx); err != nil {
			t.Fatalf("the node does not answer after the connections over the cap closed: %v", err)
		}
		clustertest.Eventually(t, 30*time.Second, "the long-polls to end", func() bool { return daemon.Waiters(api) == 0 })
	})
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors needs /proc: %v", err)
	}
	return len(ents)
}
