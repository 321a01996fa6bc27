package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestAPIBadInput checks that every bad request gets a clear 4xx error
// and stores nothing, and that idempotency keys behave.
func TestAPIBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	c := lab.Client("alpha-2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), int(lab.Configs["alpha-2"].MaxMessageSize)+1)
	tests := []struct {
		name   string
		req    client.SubmitRequest
		status int
		code   string
		text   string
	}{
		{"unknown site", client.SubmitRequest{To: "charlie", Payload: []byte("x")}, 400, client.CodeUnknownSite, `unknown destination site "charlie"`},
		{"own site", client.SubmitRequest{To: "alpha", Payload: []byte("x")}, 400, client.CodeUnknownSite, "is this site"},
		{"empty", client.SubmitRequest{To: "bravo"}, 400, client.CodeEmpty, "message is empty"},
		{"oversize", client.SubmitRequest{To: "bravo", Payload: big}, 413, client.CodeTooLarge, "larger than the limit of 1048576 bytes"},
		{"bad precedence", client.SubmitRequest{To: "bravo", Precedence: "urgent", Payload: []byte("x")}, 400, client.CodeBadRequest, "precedence"},
		{"bad wait", client.SubmitRequest{To: "bravo", Wait: "expired", Payload: []byte("x")}, 400, client.CodeBadRequest, "wait="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Submit(ctx, tt.req)
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want an API error, got %v", err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || !strings.Contains(ae.Message, tt.text) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", ae.Status, ae.Code, ae.Message, tt.status, tt.code, tt.text)
			}
		})
	}
	after, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Outbound) != len(before.Outbound) {
		t.Fatalf("bad requests stored something: outbound %+v", after.Outbound)
	}

	t.Run("idempotency key", func(t *testing.T) {
		req := client.SubmitRequest{To: "bravo", Key: "k-1", Precedence: "flash", Payload: []byte("one")}
		m1, err := c.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// Same key through another node: the same message, nothing new.
		m2, err := lab.Client("alpha-3").Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if m1.ID != m2.ID || m1.Seq != m2.Seq || m1.Existing || !m2.Existing {
			t.Fatalf("resubmit gave %+v after %+v", m2, m1)
		}
		req.Payload = []byte("two")
		_, err = c.Submit(ctx, req)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != client.CodeKeyConflict {
			t.Fatalf("reused key with other content: %v", err)
		}
	})

	t.Run("unknown message", func(t *testing.T) {
		_, err := c.Get(ctx, "no-such-id")
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || !strings.Contains(ae.Message, "no-such-id") {
			t.Fatalf("get unknown: %v", err)
		}
		_, err = lab.Client("bravo-1").Ack(ctx, []string{"no-such-id"})
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
			t.Fatalf("ack unknown: %v", err)
		}
	})
}

// TestSubmitWithoutQuorum stops two of alpha's three nodes: a submit on the
// third fails with no_quorum within submit_timeout instead of hanging, and
// after the site recovers a retry with the same key stores one message.
func TestSubmitWithoutQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	survivor := "alpha-1"
	for _, n := range daemon.LabNodes("alpha") {
		if n != survivor {
			lab.Node(n).Close()
		}
	}
	c := lab.Client(survivor)
	req := client.SubmitRequest{To: "bravo", Key: "during-outage", Payload: []byte("are you there?")}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := c.Submit(ctx, req)
	took := time.Since(start)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != client.CodeNoQuorum {
		t.Fatalf("submit without quorum: %v", err)
	}
	if limit := lab.Configs[survivor].SubmitTimeout.Duration + 5*time.Second; took > limit {
		t.Fatalf("submit without quorum took %v, more than submit_timeout plus slack (%v)", took, limit)
	}
	t.Logf("no quorum reported after %v: %s", took.Round(time.Millisecond), ae.Message)

	for _, n := range daemon.LabNodes("alpha") {
		if n != survivor {
			lab.StartNode(n)
		}
	}
	lab.Leader("alpha")
	m, err := clustertest.SubmitRetrying(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	// However the first attempt ended, exactly one message carries the key.
	msgs := clustertest.DrainInbox(t, lab.Client("bravo-1"), 1, time.Minute)
	if len(msgs) != 1 || msgs[0].ID != m.ID || string(msgs[0].Payload) != "are you there?" {
		t.Fatalf("after recovery bravo has %+v, want exactly message %s", msgs, m.ID)
	}
}
