package daemon_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestReadsConsistentAcrossNodes checks, with no faults, that every node of
// a site gives the same answers: a submit on one node is found by GET on
// another at once; messages read on one node are acknowledged through
// another without a 404; after the ack returns, a third node does not
// return them as unread. Roles rotate so that every node (leader and
// followers) reads, acknowledges and re-reads.
func TestReadsConsistentAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alpha, bravo := daemon.LabNodes("alpha"), daemon.LabNodes("bravo")

	// Submit on one node, GET on another, at once.
	phase := time.Now()
	const submits = 150
	notFound := 0
	var getTime time.Duration
	for i := range submits {
		from, to := alpha[i%3], alpha[(i+1+i/3%2)%3]
		m, err := clustertest.SubmitRetrying(ctx, lab.Client(from), client.SubmitRequest{To: "bravo", Key: fmt.Sprintf("rc-%d", i), Payload: []byte(fmt.Sprintf("rc-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		gs := time.Now()
		_, err = lab.Client(to).Get(ctx, m.ID)
		getTime += time.Since(gs)
		if client.IsCode(err, client.CodeNotFound) {
			notFound++
		} else if err != nil {
			t.Fatalf("get %s on %s: %v", m.ID, to, err)
		}
	}

	t.Logf("submit/GET phase: %v, of which GETs %v", time.Since(phase).Round(time.Millisecond), getTime.Round(time.Millisecond))
	phase = time.Now()
	// Read on P, ack through Q, re-read on R, while alpha keeps sending,
	// so that nodes are often at different points of the log.
	traffic, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	go func() {
		for i := 0; traffic.Err() == nil; i++ {
			lab.Client(alpha[i%3]).Submit(traffic, client.SubmitRequest{To: "bravo", Key: fmt.Sprintf("bg-%d", i), Payload: []byte("bg")})
		}
	}()
	var (
		rounds, acked, ackNotFound, redelivered int
		byRole                                  = map[string][2]int{} // reader role -> [acks, 404s]
	)
	leader := lab.Leader("bravo")
	for rounds < 150 && ctx.Err() == nil {
		p, q, r := bravo[rounds%3], bravo[(rounds+1+rounds/3%2)%3], bravo[(rounds+2)%3]
		in, err := lab.Client(p).Inbox(ctx, 0, 20, time.Second)
		if err != nil {
			t.Fatalf("inbox on %s: %v", p, err)
		}
		if len(in.Messages) == 0 {
			continue
		}
		rounds++
		ids := make([]string, len(in.Messages))
		for i, m := range in.Messages {
			ids[i] = m.ID
		}
		role := "follower"
		if p == leader {
			role = "leader"
		}
		c := byRole[role]
		c[0]++
		if _, err := lab.Client(q).Ack(ctx, ids); client.IsCode(err, client.CodeNotFound) {
			t.Logf("round %d: read on %s, ack on %s: %v", rounds, p, q, err)
			ackNotFound++
			c[1]++
			byRole[role] = c
			// Acknowledge them where they were read, so the inbox moves on.
			if _, err := lab.Client(p).Ack(ctx, ids); err != nil {
				t.Fatalf("ack on %s (where read): %v", p, err)
			}
			continue
		} else if err != nil {
			t.Fatalf("ack on %s: %v", q, err)
		}
		byRole[role] = c
		acked += len(ids)
		again, err := lab.Client(r).Inbox(ctx, 0, 1000, 0)
		if err != nil {
			t.Fatalf("re-read on %s: %v", r, err)
		}
		for _, m := range again.Messages {
			if slices.Contains(ids, m.ID) {
				redelivered++
				break
			}
		}
	}
	stopTraffic()
	t.Logf("read/ack phase: %v", time.Since(phase).Round(time.Millisecond))
	roles := make([]string, 0, len(byRole))
	for k := range byRole {
		roles = append(roles, k)
	}
	sort.Strings(roles)
	for _, k := range roles {
		t.Logf("read on %s: %d acks elsewhere, %d answered 404", k, byRole[k][0], byRole[k][1])
	}
	t.Logf("%d submits: %d GETs on another node answered 404; %d read/ack rounds (%d messages): %d acks answered 404, %d re-reads returned acknowledged messages",
		submits, notFound, rounds, acked, ackNotFound, redelivered)
	if notFound > 0 || ackNotFound > 0 || redelivered > 0 {
		t.Errorf("nodes disagree: %d GET 404s, %d ack 404s, %d re-deliveries (want 0)", notFound, ackNotFound, redelivered)
	}
}

// BenchmarkReadBarrier measures what a consistent read adds: the read
// barrier alone on the leader and on a follower, one reader at a time and
// with many concurrent readers (coalesced), and a whole GET through the
// socket on each for comparison.
//
//	go test ./daemon/ -run '^$' -bench ReadBarrier -benchtime 2s
func BenchmarkReadBarrier(b *testing.B) {
	lab := clustertest.Start(b)
	leader := lab.Leader("alpha")
	follower := daemon.LabNodes("alpha")[0]
	if follower == leader {
		follower = daemon.LabNodes("alpha")[1]
	}
	ctx := context.Background()
	m, err := clustertest.SubmitRetrying(ctx, lab.Client(leader), client.SubmitRequest{To: "bravo", Payload: []byte("x")})
	if err != nil {
		b.Fatal(err)
	}
	for _, role := range []struct{ name, node string }{{"leader", leader}, {"follower", follower}} {
		n := lab.Node(role.node)
		b.Run("barrier/"+role.name, func(b *testing.B) {
			for b.Loop() {
				if err := daemon.ReadBarrier(n, ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("barrier-parallel/"+role.name, func(b *testing.B) {
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := daemon.ReadBarrier(n, ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		c := lab.Client(role.node)
		b.Run("get/"+role.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Get(ctx, m.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
