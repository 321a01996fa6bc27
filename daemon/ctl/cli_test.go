package ctl_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestCLIRoundTrip drives the documented workflow through hotlinectl:
// send with --wait delivered, recv --ack --json on a destination follower,
// get until read, the same --id again, and status --json.
func TestCLIRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	out, err := lab.Hotlinectl(t, "alpha-2", "flash traffic", "send", "--to", "bravo", "--precedence", "flash", "--id", "cli-1", "--wait", "delivered")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	again, err := lab.Hotlinectl(t, "alpha-3", "flash traffic", "send", "--to", "bravo", "--precedence", "flash", "--id", "cli-1")
	if err != nil || strings.TrimSpace(again) != id {
		t.Fatalf("same --id gave %q (err %v), want %s", again, err, id)
	}

	out, err = lab.Hotlinectl(t, "bravo-3", "", "recv", "--ack", "--json", "--wait", "10s")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("recv printed %d lines, want 1:\n%s", len(lines), out)
	}
	var m struct {
		ID, From, Precedence string
		Seq                  uint64
		Payload              []byte
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != id || m.From != "alpha" || m.Precedence != "flash" || m.Seq != 1 || string(m.Payload) != "flash traffic" {
		t.Fatalf("recv gave %+v", m)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err = lab.Hotlinectl(t, "alpha-1", "", "get", id, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ State string }
		json.Unmarshal([]byte(out), &st)
		if st.State == "read" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %s after 30s, want read", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, err = lab.Hotlinectl(t, "bravo-1", "", "status", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"site", "node", "role", "leader", "pid"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status --json lacks %q: %s", k, out)
		}
	}
	if st["site"] != "bravo" || st["node"] != "bravo-1" || (st["role"] != "leader" && st["role"] != "follower") {
		t.Errorf("status: %s", out)
	}
}
