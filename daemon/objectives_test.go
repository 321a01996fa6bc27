package daemon

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// TestOverdueWatch runs the checker against a real store by hand, with
// time as its input: a flash message to bravo/watch and an inbound one
// in this site's watch mailbox become overdue after 2s (the local
// mailbox's objective serves for bravo's, whose list is not known), are
// logged once, listed, alarmed and counted; read, they are logged as
// cleared.
func TestOverdueWatch(t *testing.T) {
	store, err := queue.Open(filepath.Join(t.TempDir(), "state.db"), "alpha", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var index uint64
	apply := func(c queue.Command) {
		t.Helper()
		data, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		index++
		if res := store.Apply([]queue.Entry{{Index: index, Data: data}}); res[0].Err != "" {
			t.Fatal(res[0].Err)
		}
	}
	t0 := time.Unix(1_700_000_000, 0)
	apply(queue.Command{Op: queue.OpSubmit, Time: t0.UnixNano(), Submit: &queue.Submit{Items: []queue.SubmitItem{
		{ID: "out1", Dest: "bravo", Precedence: queue.Flash, Mailbox: "watch", Payload: []byte("x")},
		{ID: "out2", Dest: "bravo", Precedence: queue.Routine, Mailbox: "watch", Payload: []byte("x")},
	}}})
	apply(queue.Command{Op: queue.OpReceive, Time: t0.UnixNano(), Receive: &queue.Receive{Origin: "bravo", Precedence: queue.Flash, Messages: []queue.Message{
		{ID: "in1", Origin: "bravo", Dest: "alpha", Precedence: queue.Flash, Seq: 1, Mailbox: "watch", Payload: []byte("y"), SubmittedAt: t0.UnixNano()},
	}}})
	mbs, err := newMailboxes([]MailboxConfig{{Name: "watch", Objectives: map[string]Duration{"flash": {2 * time.Second}}}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := newOverdueWatch(store, &objectives{local: mbs, remote: newRemoteMailboxes()}, log)

	w.check(t0.Add(time.Second))
	if len(w.list()) != 0 || len(w.alarms()) != 0 || logs.Len() != 0 {
		t.Fatalf("overdue before the objective: %+v %q %s", w.list(), w.alarms(), logs.String())
	}
	w.check(t0.Add(3 * time.Second))
	w.check(t0.Add(4 * time.Second)) // logged once
	list := w.list()
	if len(list) != 2 || list[0].Due != t0.Add(2*time.Second).UTC() {
		t.Fatalf("list = %+v", list)
	}
	if a := w.alarms(); len(a) != 2 || !strings.Contains(a[0], "1 flash messages from bravo in mailbox watch not acknowledged within 2s") ||
		!strings.Contains(a[1], "1 flash messages to bravo/watch not read within 2s (first out1") {
		t.Fatalf("alarms = %q", a)
	}
	if got := w.inbound()["watch"]["flash"]; got != 1 {
		t.Fatalf("inbound counts = %v", w.inbound())
	}
	if n := strings.Count(logs.String(), "read objective missed"); n != 2 {
		t.Fatalf("%d overdue log lines, want 2:\n%s", n, logs.String())
	}
	// bravo states its objective: 1h for flash to watch; out1 is no
	// longer overdue, out2 (routine, 6h) never was.
	w.obj.remote.set("bravo", []remoteMailbox{{Name: "watch", Objectives: [numPrecedences]time.Duration{time.Hour, time.Hour, time.Hour, time.Hour}}})
	apply(queue.Command{Op: queue.OpMarkRead, Time: t0.Add(5 * time.Second).UnixNano(), MarkRead: &queue.MarkRead{IDs: []string{"in1"}}})
	w.check(t0.Add(5 * time.Second))
	if len(w.list()) != 0 || len(w.alarms()) != 0 {
		t.Fatalf("after the read: %+v %q", w.list(), w.alarms())
	}
	out := logs.String()
	if !strings.Contains(out, "overdue message cleared") || !strings.Contains(out, "id=in1") || !strings.Contains(out, "state=read") ||
		!strings.Contains(out, "no longer among the overdue followed") {
		t.Fatalf("clearing logs:\n%s", out)
	}
}
