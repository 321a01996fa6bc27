package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "hotline.sock")
	c := New(sock)
	ctx := context.Background()
	calls := map[string]func() error{
		"submit": func() error { _, err := c.Submit(ctx, SubmitRequest{To: "bravo", Payload: []byte("x")}); return err },
		"get":    func() error { _, err := c.Get(ctx, "m1"); return err },
		"inbox":  func() error { _, err := c.Inbox(ctx, 0, 10, 0); return err },
		"ack":    func() error { _, err := c.Ack(ctx, []string{"m1"}); return err },
		"status": func() error { _, err := c.Status(ctx); return err },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: error = %v, want ErrUnreachable", name, err)
			continue
		}
		var ue *UnreachableError
		if !errors.As(err, &ue) || ue.Socket != sock {
			t.Errorf("%s: error %v is not an *UnreachableError for %s", name, err, sock)
		}
		if !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s: error %v does not unwrap to ENOENT", name, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot reach hotlined at "+sock) {
			t.Errorf("%s: error %q does not name the socket", name, msg)
		}
		// The advice of a command-line tool is the tool's to give.
		for _, cli := range []string{"--socket", "HOTLINE_SOCKET", "hotlinectl"} {
			if strings.Contains(msg, cli) {
				t.Errorf("%s: error %q gives command-line advice (%s)", name, msg, cli)
			}
		}
		if !Retryable(err) {
			t.Errorf("%s: unreachable error is not Retryable", name)
		}
	}
}

func TestUnreachableNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(path).Status(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error = %v, want ErrUnreachable naming %s", err, path)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(filepath.Join(t.TempDir(), "s.sock")).Status(ctx)
	if !errors.Is(err, context.Canceled) || Retryable(err) {
		t.Fatalf("error = %v, want context.Canceled, not retryable", err)
	}
}

// serve runs handler on a Unix socket and returns a client of it. The
// handler stands for the wire contract in api.go only: these tests check
// what the client sends and how it reads replies, not daemon behaviour.
func serve(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "h.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	c := New(sock)
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
	})
	return c
}

func TestSubmitEncoding(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		want := map[string]string{"to": "bravo", "precedence": "flash", "id": "k 1/ü", "ttl": "1h0m0s", "wait": "delivered", "timeout": "5s"}
		for k, v := range want {
			if q.Get(k) != v {
				t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
			}
		}
		if r.Method != http.MethodPost || r.URL.Path != PathMessages || string(body) != "payload\x00bytes" {
			t.Errorf("got %s %s body %q", r.Method, r.URL.Path, body)
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(Message{ID: "m1", Key: q.Get("id"), State: "delivered", SubmittedAt: now})
	})
	m, err := c.Submit(context.Background(), SubmitRequest{
		To: "bravo", Precedence: "flash", Key: "k 1/ü", TTL: time.Hour, Wait: "delivered", Timeout: 5 * time.Second,
		Payload: []byte("payload\x00bytes"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "m1" || m.State != "delivered" || !m.SubmittedAt.Equal(now) || m.Existing {
		t.Errorf("Submit = %+v", m)
	}
}

func TestSubmitExisting(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("ttl") || r.URL.Query().Has("timeout") || r.URL.Query().Has("precedence") {
			t.Errorf("zero fields were sent: %s", r.URL.RawQuery)
		}
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(Message{ID: "m1", State: "queued"})
	})
	m, err := c.Submit(context.Background(), SubmitRequest{To: "bravo", Key: "k", Payload: []byte("x")})
	if err != nil || !m.Existing {
		t.Fatalf("Submit = %+v, %v; want Existing after 200", m, err)
	}
}

func TestGetInboxAckStatusEncoding(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, PathMessages+"/"):
			if r.URL.EscapedPath() != PathMessages+"/a%2Fb%20c" {
				t.Errorf("get path = %q, want the id path-escaped", r.URL.EscapedPath())
			}
			json.NewEncoder(w).Encode(Message{ID: "a/b c"})
		case r.Method == http.MethodGet && r.URL.Path == PathInbox:
			q := r.URL.Query()
			if q.Get("after") != "42" || q.Get("max") != "7" || q.Get("wait") != "1.5s" {
				t.Errorf("inbox query = %s", r.URL.RawQuery)
			}
			json.NewEncoder(w).Encode(Inbox{Messages: []InboxMessage{{ID: "m", Pos: 43, Payload: []byte{0, 1, 2}}}, Next: 43})
		case r.Method == http.MethodPost && r.URL.Path == PathAck:
			var req AckRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.IDs) != 2 {
				t.Errorf("ack body: %+v, %v", req, err)
			}
			json.NewEncoder(w).Encode(AckReply{Acked: len(req.IDs)})
		case r.Method == http.MethodGet && r.URL.Path == PathStatus:
			json.NewEncoder(w).Encode(Status{Site: "alpha", Node: "a1", Role: "leader"})
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	if m, err := c.Get(ctx, "a/b c"); err != nil || m.ID != "a/b c" {
		t.Errorf("Get = %+v, %v", m, err)
	}
	in, err := c.Inbox(ctx, 42, 7, 1500*time.Millisecond)
	if err != nil || len(in.Messages) != 1 || in.Next != 43 || string(in.Messages[0].Payload) != "\x00\x01\x02" {
		t.Errorf("Inbox = %+v, %v", in, err)
	}
	if r, err := c.Ack(ctx, []string{"m", "n"}); err != nil || r.Acked != 2 {
		t.Errorf("Ack = %+v, %v", r, err)
	}
	if s, err := c.Status(ctx); err != nil || s.Site != "alpha" || s.Role != "leader" {
		t.Errorf("Status = %+v, %v", s, err)
	}
}

func TestAPIError(t *testing.T) {
	replies := map[string]func(w http.ResponseWriter){
		"/json": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(Error{Error: "site alpha has no quorum", Code: CodeNoQuorum})
		},
		"/text": func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "upstream broke\n")
		},
		"/empty": func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
	}
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		replies[strings.TrimPrefix(r.URL.Path, PathMessages)](w)
	})
	ctx := context.Background()

	_, err := c.Get(ctx, "json")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != CodeNoQuorum || ae.Message != "site alpha has no quorum" {
		t.Fatalf("json error = %#v", err)
	}
	if !strings.Contains(err.Error(), "site alpha has no quorum") || !IsCode(err, CodeNoQuorum) || !Retryable(err) {
		t.Errorf("json error %q: text, IsCode or Retryable wrong", err)
	}

	_, err = c.Get(ctx, "text")
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "" || !strings.Contains(err.Error(), "upstream broke") || Retryable(err) {
		t.Errorf("text error = %#v (%v)", err, err)
	}
	_, err = c.Get(ctx, "empty")
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(err.Error(), "Not Found") {
		t.Errorf("empty error = %#v (%v)", err, err)
	}
}

func TestSubmitAcceptedAndUnknownOutcome(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("id") == "quorum" {
			w.Header().Set(HeaderMessageID, "m9")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(Error{Error: "no quorum", Code: CodeNoQuorum})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(Message{ID: "m1", State: "queued", WaitTimedOut: true, Existing: true})
	})
	m, err := c.Submit(context.Background(), SubmitRequest{To: "bravo", Key: "k", Wait: "delivered", Payload: []byte("x")})
	if err != nil || m.ID != "m1" || !m.WaitTimedOut || !m.Existing || m.State != "queued" {
		t.Fatalf("202: %+v, %v", m, err)
	}
	_, err = c.Submit(context.Background(), SubmitRequest{To: "bravo", Key: "quorum", Payload: []byte("x")})
	var ae *APIError
	if !errors.As(err, &ae) || ae.ID != "m9" || ae.Code != CodeNoQuorum {
		t.Fatalf("no_quorum with an id: %#v", err)
	}
}
