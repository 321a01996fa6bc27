package consensus

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/testutil"
)

func TestClusterReplicatesInOrder(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	c.applyN(l, "a", 500)
	seq := c.converged(500)
	if len(seq) != 500 {
		t.Fatalf("got %d entries", len(seq))
	}

	// The result of Apply is the state machine's result for that entry.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.nodes[l].node.Apply(ctx, []byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	idx, ok := res.(uint64)
	if !ok || idx == 0 {
		t.Fatalf("Apply result = %#v, want the entry's index", res)
	}
	c.converged(501)
	if err := c.nodes[l].node.Barrier(ctx); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	st := c.nodes[l].node.Stats()
	if st.AppliedIndex < idx || st.CommitIndex < idx || st.LastIndex < idx || st.Term == 0 || st.LastContact != 0 {
		t.Fatalf("leader stats %+v, want indexes >= %d, term > 0, last contact 0", st, idx)
	}
	f := c.follower(l)
	if fs := c.nodes[f].node.Stats(); fs.LastContact < 0 {
		t.Fatalf("follower stats %+v: want a last contact", fs)
	}
	servers, err := c.nodes[f].node.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("Servers() = %v, %v", servers, err)
	}
	for i, s := range servers {
		if s.ID != c.nodes[i].name || s.Addr != c.nodes[i].addr {
			t.Fatalf("Servers()[%d] = %+v, want %s at %s", i, s, c.nodes[i].name, c.nodes[i].addr)
		}
	}
	if got := c.nodes[l].node.State(); got != "leader" {
		t.Fatalf("leader State() = %q", got)
	}
	if got := c.nodes[f].node.State(); got != "follower" {
		t.Fatalf("follower State() = %q", got)
	}
}

func TestFollowerRejectsWrites(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	f := c.nodes[c.follower(l)].node
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := f.Apply(ctx, []byte("x")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower Apply: %v, want ErrNotLeader", err)
	}
	if err := f.Barrier(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower Barrier: %v, want ErrNotLeader", err)
	}
	if err := f.TransferLeadership(ctx, ""); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower TransferLeadership: %v, want ErrNotLeader", err)
	}
	id, addr := f.Leader()
	if id != c.nodes[l].name || addr != c.nodes[l].addr {
		t.Fatalf("follower Leader() = %q %q, want %q %q", id, addr, c.nodes[l].name, c.nodes[l].addr)
	}
	if got, err := f.WaitLeader(ctx); err != nil || got != c.nodes[l].name {
		t.Fatalf("WaitLeader = %q, %v", got, err)
	}
}

// transfer retries a leadership transfer that timed out (the target may
// need longer than one election timeout to catch up on a busy machine).
func transfer(t *testing.T, n *Node, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for range 5 {
		if err = n.TransferLeadership(ctx, to); err == nil || errors.Is(err, ErrNotLeader) {
			return
		}
	}
	t.Fatalf("transfer leadership to %q: %v", to, err)
}

func TestLeadershipTransfer(t *testing.T) {
	c := MakeCluster(t, 3)
	old := c.leader()
	c.applyN(old, "before", 50)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := c.nodes[old].node.TransferLeadership(ctx, "nobody"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("transfer to unknown: %v, want ErrUnknownServer", err)
	}
	if err := c.nodes[old].node.TransferLeadership(ctx, c.nodes[old].name); err == nil {
		t.Fatal("transfer to itself succeeded")
	}

	// To any other voter.
	transfer(t, c.nodes[old].node, "")
	next := c.leader()
	if next == old {
		t.Fatalf("leader still %s after transfer", c.nodes[old].name)
	}
	waitLeaderCh(t, c.nodes[old].node, false)
	waitLeaderCh(t, c.nodes[next].node, true)
	c.applyN(next, "after", 50)
	c.converged(100)

	// To a named voter: the one that has not led yet.
	target := 3 - old - next
	transfer(t, c.nodes[next].node, c.nodes[target].name)
	if got := c.leader(); got != target {
		t.Fatalf("leader is %s, want %s", c.nodes[got].name, c.nodes[target].name)
	}
	c.applyN(target, "third", 50)
	seq := c.converged(150)
	for i, want := range []string{"before", "after", "third"} {
		for _, s := range seq[i*50 : (i+1)*50] {
			if len(s) < len(want) || s[:len(want)] != want {
				t.Fatalf("entry %q in the %s block", s, want)
			}
		}
	}
}

// waitLeaderCh waits for want on n's LeaderCh, skipping older values.
func waitLeaderCh(t *testing.T, n *Node, want bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case v := <-n.LeaderCh():
			if v == want {
				return
			}
		case <-timeout:
			t.Fatalf("LeaderCh never sent %v", want)
		}
	}
}

func TestRestartedNodeCatchesUpBySnapshot(t *testing.T) {
	c := MakeCluster(t, 3, snapshotOften())
	l := c.leader()
	c.applyN(l, "a", 20)
	c.converged(20)

	f := c.follower(l)
	c.stop(f)
	c.applyN(l, "b", 200)
	c.converged(220)
	// Wait until the leader has snapshotted and compacted its log past
	// what the stopped follower has, so it must be sent a snapshot.
	testutil.Eventually(t, 15*time.Second, "leader snapshot and log compaction", func() bool {
		first, err := c.nodes[l].node.store.FirstIndex()
		return err == nil && first > 30
	})

	c.start(f)
	c.converged(220)
	if c.nodes[f].fsm.restoreCount() == 0 {
		t.Fatal("restarted node caught up without restoring a snapshot")
	}
	// Raft logs the installation after the state machine's Restore returns.
	testutil.Eventually(t, 10*time.Second, "the restarted node installs the leader's snapshot", func() bool {
		return c.nodes[f].logs.count("Installed remote snapshot") > 0
	})
	if l2 := c.leader(); l2 != l {
		l = l2
	}
	c.applyN(l, "c", 30)
	c.converged(250)

	// Restart the same node again: now it restores its own snapshot and
	// replays its log, without help.
	c.stop(f)
	c.start(f)
	c.converged(250)
	if c.nodes[f].fsm.restoreCount() == 0 {
		t.Fatal("second restart did not restore the local snapshot")
	}
}

func TestForeignCertificateCannotJoin(t *testing.T) {
	c := MakeCluster(t, 3, withForeignCA(2))
	foreign := c.nodes[2]
	l := c.leader()
	if l == 2 {
		t.Fatal("the node with a foreign certificate became leader")
	}
	c.applyN(l, "a", 50)
	testutil.Eventually(t, 10*time.Second, "the two good nodes commit", func() bool {
		return c.nodes[0].fsm.len() == 50 && c.nodes[1].fsm.len() == 50
	})
	// Give the foreign node time to receive anything it could.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[l].node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if n := foreign.fsm.len(); n != 0 {
		t.Fatalf("foreign node applied %d entries", n)
	}
	if st := foreign.node.Stats(); st.LastIndex > 1 {
		t.Fatalf("foreign node log reached index %d (bootstrap is 1)", st.LastIndex)
	}
	if foreign.node.IsLeader() {
		t.Fatal("foreign node is leader")
	}
	if id, _ := foreign.node.Leader(); id != "" {
		t.Fatalf("foreign node knows leader %q", id)
	}
	// The good nodes reject it at the handshake and say so, rate-limited.
	for _, i := range []int{0, 1} {
		logs := c.nodes[i].logs
		if n := logs.count("rejected raft connection at TLS handshake"); n == 0 || n > 2 {
			t.Errorf("%s logged %d handshake rejections, want 1 (rate-limited)", c.nodes[i].name, n)
		}
		if n := logs.count("failed to decode incoming command"); n != 0 {
			t.Errorf("%s: a foreign connection reached raft decoding", c.nodes[i].name)
		}
	}
}

func TestMinorityCannotCommit(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	c.applyN(l, "a", 10)
	c.converged(10)
	for i := range c.nodes {
		if i != l {
			c.stop(i)
		}
	}
	leader := c.nodes[l].node

	// Without a context deadline: the lease makes the leader step down,
	// so Apply must end on its own.
	done := make(chan error, 1)
	go func() {
		_, err := leader.Apply(context.Background(), []byte("lost"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNotLeader) {
			t.Fatalf("minority Apply: %v, want ErrNoQuorum or ErrNotLeader", err)
		}
		t.Logf("minority Apply: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("Apply on a minority did not return")
	}

	// With a deadline: bounded by it at the latest.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := leader.Apply(ctx, []byte("lost2"))
	if !errors.Is(err, ErrNoQuorum) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("minority Apply with deadline: %v", err)
	}
	if leader.IsLeader() {
		t.Fatal("a node without quorum still claims leadership")
	}

	// Closed node.
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := leader.Apply(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}
	if _, err := leader.WaitLeader(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitLeader after Close: %v, want ErrClosed", err)
	}
	if got := leader.State(); got != "shutdown" {
		t.Fatalf("State after Close = %q", got)
	}
	c.nodes[l].node = nil
}

func TestApplyContext(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	n := c.nodes[l].node
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Apply(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with cancelled ctx: %v", err)
	}
	if _, err := n.WaitLeader(ctx); !errors.Is(err, context.Canceled) {
		// A known leader is returned even with a cancelled context.
		if err != nil {
			t.Fatalf("WaitLeader: %v", err)
		}
	}
	// Many concurrent proposers each get their own entry's result.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	results := make(chan uint64, 64)
	for k := range 64 {
		go func() {
			res, err := n.Apply(ctx2, []byte(strconv.Itoa(k)))
			if err != nil {
				t.Error(err)
				results <- 0
				return
			}
			results <- res.(uint64)
		}()
	}
	seen := make(map[uint64]bool)
	for range 64 {
		r := <-results
		if r == 0 || seen[r] {
			t.Fatalf("result %d duplicated or missing", r)
		}
		seen[r] = true
	}
	c.converged(64)
}
