package upgradetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestReadOldDataDir has the previous release write both sites' data
// directories: messages both ways, half of each inbox read (acknowledged,
// its receipts back at the origin), half unread. It records what every
// node of the origin and destination sites answers for each message (GET
// /v1/messages/{id}, what hotlinectl get --json shows) and each site's
// inbox, stops every node with SIGTERM and starts them all on the current
// build with the same data directories: every node must answer the same
// (every field the previous release gave, equal; fields it did not have
// may be added). Then the unread half is read, its receipts must come
// back, and new messages must go both ways.
func TestReadOldDataDir(t *testing.T) {
	skipLab(t)
	prev, rel := previousRelease(t)
	cur := clustertest.Binaries(t)
	c := clock{t: t, start: time.Now()}
	l := clustertest.StartProcLabFrom(t, prev, oldDataBasePort, nil)
	for _, s := range daemon.LabSites {
		leaderOf(t, l, s)
	}
	c.logf("both sites up on release %s", rel.Version)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := clustertest.NewLedger()
	const perNode = 8 // 24 messages each way, every precedence
	clustertest.StartTraffic(ctx, "old", perNode, l.Client, g).Wait(t)
	readBy := map[string]*client.Client{} // a client of each site
	for _, s := range daemon.LabSites {
		readBy[s] = l.Client(daemon.LabNodes(s)[0])
	}
	read := map[string]bool{} // ids acknowledged at their destination
	for _, s := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, readBy[s], g.AckedTo(s), time.Minute)
		g.CheckArrivals(t, s, msgs)
		var half []client.InboxMessage
		for i, m := range msgs {
			if i%2 == 0 {
				half = append(half, m)
				read[m.ID] = true
			}
		}
		clustertest.AckAll(ctx, t, readBy[s], daemon.LabNodes(s)[0], half)
	}
	// Settled: the read half is read at its origin, the rest delivered,
	// and no receipt waits to be sent.
	clustertest.Eventually(t, time.Minute, "every message delivered or read, every receipt sent", func() bool {
		for _, s := range g.Sent() {
			m, err := readBy[s.From].Get(ctx, s.ID)
			if err != nil || read[s.ID] && m.State != "read" || !read[s.ID] && m.State != "delivered" {
				return false
			}
		}
		for _, n := range allNodes() {
			if st, err := statusOf(l, n); err != nil || st.ReceiptsPending != 0 {
				return false
			}
		}
		return true
	})

	before := snapshot(t, l, g)
	c.logf("recorded %d answers about %d messages and %d inboxes on release %s", len(before.messages), len(g.Sent()), len(before.inboxes), rel.Version)
	for _, n := range allNodes() {
		stopNode(t, l, n)
	}
	for _, n := range allNodes() {
		l.StartNodeFrom(n, cur)
	}
	for _, n := range allNodes() {
		waitHealthy(t, l, n, 90*time.Second)
	}
	c.logf("every node restarted on the current build with the release's data directories")
	after := snapshot(t, l, g)
	compareSnapshots(t, before, after)

	// The unread half read with the current build; its receipts come back.
	for _, s := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, readBy[s], 1, 30*time.Second)
		clustertest.AckAll(ctx, t, readBy[s], daemon.LabNodes(s)[0], msgs)
	}
	g.WaitRead(ctx, t, func(site string) *client.Client { return readBy[site] }, client.Retryable)
	// New messages both ways.
	g2 := clustertest.NewLedger()
	clustertest.StartTraffic(ctx, "new", 2, l.Client, g2).Wait(t)
	for _, s := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, readBy[s], g2.AckedTo(s), time.Minute)
		var keys []string
		for _, m := range msgs {
			keys = append(keys, m.Key)
		}
		for _, sent := range g2.Sent() {
			if sent.To == s && !slices.Contains(keys, sent.Key) {
				t.Errorf("%s: %s, sent after the upgrade, did not arrive", s, sent.Key)
			}
		}
		clustertest.AckAll(ctx, t, readBy[s], daemon.LabNodes(s)[0], msgs)
	}
	g2.WaitRead(ctx, t, func(site string) *client.Client { return readBy[site] }, client.Retryable)
	c.logf("the old inboxes read and new messages exchanged on the current build")
}

// dataSnapshot is what the nodes answer about a lab's messages: the raw
// JSON of each message's GET by "node id", and each node's inbox (from
// the start).
type dataSnapshot struct {
	messages map[string]map[string]any
	inboxes  map[string][]map[string]any
}

// snapshot asks every node of each message's origin and destination site
// about it, and every node for its inbox.
func snapshot(t *testing.T, l *clustertest.ProcLab, g *clustertest.Ledger) dataSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	snap := dataSnapshot{messages: map[string]map[string]any{}, inboxes: map[string][]map[string]any{}}
	for _, s := range g.Sent() {
		for _, n := range append(daemon.LabNodes(s.From), daemon.LabNodes(s.To)...) {
			var m map[string]any
			if err := getJSON(ctx, l, n, "/v1/messages/"+url.PathEscape(s.ID), &m); err != nil {
				t.Fatal(err)
			}
			snap.messages[n+" "+s.ID] = m
		}
	}
	for _, n := range allNodes() {
		var in struct {
			Messages []map[string]any `json:"messages"`
		}
		if err := getJSON(ctx, l, n, "/v1/inbox?after=0&max=1000", &in); err != nil {
			t.Fatal(err)
		}
		snap.inboxes[n] = in.Messages
	}
	return snap
}

// compareSnapshots fails t for every field of before that after does not
// have, or has with another value; fields after adds are logged.
func compareSnapshots(t *testing.T, before, after dataSnapshot) {
	t.Helper()
	added := map[string]bool{}
	same := func(what string, b, a map[string]any) {
		t.Helper()
		for k, v := range b {
			if av, ok := a[k]; !ok || !reflect.DeepEqual(v, av) {
				t.Errorf("%s: %q was %s, now %s", what, k, jsonText(v), jsonText(av))
			}
		}
		for k := range a {
			if _, ok := b[k]; !ok {
				added[k] = true
			}
		}
	}
	for k, b := range before.messages {
		same("message "+k, b, after.messages[k])
	}
	unread := 0
	for n, b := range before.inboxes {
		a := after.inboxes[n]
		if len(a) != len(b) {
			t.Errorf("%s's inbox: %d unread messages, was %d", n, len(a), len(b))
			continue
		}
		for i := range b {
			same(fmt.Sprintf("%s's inbox, message %d", n, i), b[i], a[i])
		}
		unread += len(b)
	}
	var keys []string
	for k := range added {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := "none"
	if len(keys) > 0 {
		list = strings.Join(keys, ", ")
	}
	t.Logf("compared %d answers about messages and %d inbox entries; fields the current build adds: %s",
		len(before.messages), unread, list)
}

func jsonText(v any) string {
	if v == nil {
		return "absent"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
