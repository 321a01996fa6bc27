package forward

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
)

// TestForwardRestoredSite restores bravo from a backup that lacks what it
// received and sent since, on two real stores joined by linktest.Net.
// alpha notices that bravo acknowledges less than before and resends from
// bravo's last (tombstones for what alpha purged meanwhile); bravo's
// fenced channels and receipt queue first learn alpha's last (resync), so
// its new messages continue after what alpha already has instead of being
// dropped as duplicates.
func TestForwardRestoredSite(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](11, func(b *transport.Batch) string { return b.To })
	t.Cleanup(net.Close)
	sites := []string{"alpha", "bravo"}
	alpha, bravo := newSite(t, net, "alpha", sites), newSite(t, net, "bravo", sites)
	net.SetFaults(linktest.Faults{Duplicate: 0.2, Reorder: 0.2, Delay: time.Millisecond})
	alpha.run(t)
	stopBravo := bravo.run(t)
	settled := func() {
		t.Helper()
		for _, s := range []*site{alpha, bravo} {
			waitFor(t, s.store, func() bool {
				q := s.store.ReceiptQueues()
				return allAcked(s.store) && (len(q) == 0 || q[0].Acked == q[0].Last)
			}, func() string {
				return fmt.Sprintf("%s not settled: %+v, %+v", s.name, s.store.Outbound(), s.store.ReceiptQueues())
			})
		}
	}
	ids := func(m map[queue.Precedence][]string) (out []string) {
		for _, p := range queue.Precedences {
			out = append(out, m[p]...)
		}
		return out
	}
	markRead := func(s *site, ids []string) {
		t.Helper()
		if _, err := s.log.Propose(context.Background(), &queue.Command{Op: queue.OpMarkRead, Time: time.Now().UnixNano(),
			MarkRead: &queue.MarkRead{IDs: ids}}); err != nil {
			t.Fatal(err)
		}
	}

	a1 := alpha.submit(t, "bravo", "a1", 20)
	bravo.submit(t, "alpha", "b1", 8)
	settled()
	markRead(bravo, ids(a1))
	settled()

	backup := filepath.Join(t.TempDir(), "bravo.backup")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bravo.store.Backup("bravo-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.WriteTo(f)
	b.Release()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	// Traffic the backup lacks; then alpha purges everything final.
	a2 := alpha.submit(t, "bravo", "a2", 20)
	bravo.submit(t, "alpha", "b2", 8)
	settled()
	res, err := alpha.log.Propose(context.Background(), &queue.Command{Op: queue.OpPurge, Time: time.Now().UnixNano(),
		Purge: &queue.Purge{Before: time.Now().Add(time.Hour).UnixNano()}})
	if err != nil || res.Purge.Purged < 40 {
		t.Fatalf("purge: %+v, %v; want all 40 of alpha's messages purged", res.Purge, err)
	}

	// Restore bravo.
	stopBravo()
	restored := filepath.Join(t.TempDir(), "restored.db")
	if _, err := queue.RestoreBackup(backup, restored, "bravo", []string{"alpha"}); err != nil {
		t.Fatal(err)
	}
	bravo = openSite(t, net, "bravo", sites, restored)
	bravo.run(t)

	// alpha's next message finds bravo behind: it resends a2 (now
	// tombstones), then a3.
	a3 := alpha.submit(t, "bravo", "a3", 4)
	// bravo's submits are refused until its channels have resynchronised.
	b3 := map[queue.Precedence]string{}
	var items []queue.SubmitItem
	for _, p := range queue.Precedences {
		b3[p] = "b3-" + p.String()
		items = append(items, queue.SubmitItem{ID: b3[p], Dest: "alpha", Precedence: p, Payload: []byte("after the restore")})
	}
	waitFor(t, bravo.store, func() bool { return bravo.trySubmit(items) == nil }, func() string {
		return fmt.Sprintf("bravo still refuses submits: %v", bravo.trySubmit(items))
	})
	settled()

	// bravo holds every channel gap-free: a1 and a3 in its inbox exactly
	// once, in order, a2 as tombstones.
	inbox, err := bravo.store.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range inbox {
		got = append(got, it.Message.ID)
	}
	want := map[string]bool{}
	for _, id := range append(ids(a1), ids(a3)...) {
		want[id] = true
	}
	seen := map[string]bool{}
	for _, id := range got {
		if !want[id] || seen[id] {
			t.Fatalf("restored bravo's inbox holds %s (unexpected or twice): %v", id, got)
		}
		seen[id] = true
	}
	for _, id := range ids(a3) {
		if !seen[id] {
			t.Fatalf("restored bravo's inbox lacks %s: %v", id, got)
		}
	}
	for _, c := range bravo.store.Inbound() {
		if n := uint64(len(a1[c.Precedence]) + len(a2[c.Precedence]) + len(a3[c.Precedence])); c.Last != n {
			t.Fatalf("restored bravo's channel %s/%s ends at %d, want %d", c.Origin, c.Precedence, c.Last, n)
		}
	}
	for _, id := range ids(a2) {
		if st, err := bravo.store.LookupInbound(id); err == nil {
			t.Fatalf("restored bravo holds %s (%v); alpha had purged it and should have sent a tombstone", id, st.State)
		}
	}

	// bravo's new messages continue after alpha's last: none was dropped
	// as a duplicate of a message from before the restore.
	for p, id := range b3 {
		st, err := alpha.store.LookupInbound(id)
		if err != nil || st.Message.Seq != 5 {
			t.Fatalf("alpha: %s (%s) is %+v, %v; want it applied as seq 5", id, p, st, err)
		}
	}

	// Receipts from the restored bravo reach alpha.
	markRead(bravo, ids(a3))
	last := ids(a3)[len(ids(a3))-1]
	waitFor(t, alpha.store, func() bool {
		st, err := alpha.store.Lookup(last)
		return err == nil && st.State == queue.Read
	}, func() string {
		return fmt.Sprintf("receipts not back: bravo's queues %+v", bravo.store.ReceiptQueues())
	})
}
