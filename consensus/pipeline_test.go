package consensus

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// pipelinePair is a leader-side transport (ours) and a follower-side
// network transport on loopback TCP; the follower answers AppendEntries
// with answer(index of the request, counting from 0).
func pipelinePair(t *testing.T, answer func(i int) raft.AppendEntriesResponse) (*raftTransport, raft.ServerAddress) {
	t.Helper()
	follower, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		for i := 0; ; i++ {
			select {
			case rpc := <-follower.Consumer():
				resp := answer(i)
				rpc.Respond(&resp, nil)
			case <-stop:
				return
			}
		}
	}()
	tcp, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	leader := &raftTransport{tcp}
	t.Cleanup(func() {
		leader.Close()
		close(stop)
		<-served
		follower.Close()
	})
	return leader, follower.LocalAddr()
}

// TestPipelineEndsAfterRejection plays hashicorp/raft's pipelined
// replication against a follower that rejects the third append: Raft's
// decoder stops reading at that response, as pipelineDecode does, while
// the sender keeps sending. With the network transport's own pipeline the
// sender then blocks for good (hashicorp/raft issue 612); ours returns
// errPipelineRejected, and Close ends it in any case.
func TestPipelineEndsAfterRejection(t *testing.T) {
	const rejectAt = 2
	leader, follower := pipelinePair(t, func(i int) raft.AppendEntriesResponse {
		return raft.AppendEntriesResponse{Term: 1, Success: i != rejectAt}
	})
	p, err := leader.AppendEntriesPipeline("f", follower)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	decoded := make(chan int, 1)
	go func() { // pipelineDecode
		n := 0
		for f := range p.Consumer() {
			n++
			if !f.Response().Success {
				decoded <- n
				return
			}
		}
	}()
	sent := make(chan error, 1)
	go func() { // pipelineSend, never looking at whether the decoder stopped
		for i := range 100 {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	select {
	case n := <-decoded:
		if n != rejectAt+1 {
			t.Fatalf("the decoder read %d responses before the rejection; want %d", n, rejectAt+1)
		}
	case <-time.After(time.Minute):
		t.Fatal("the decoder never saw the rejection")
	}
	select {
	case err := <-sent:
		if !errors.Is(err, errPipelineRejected) {
			t.Fatalf("sending after the rejection: %v; want errPipelineRejected", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the sender is still blocked a minute after the decoder stopped")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err == nil {
		t.Fatal("AppendEntries on a closed pipeline succeeded")
	}
}

// TestPipelineCarriesEveryResponseInOrder: with a follower that accepts
// everything, each request's response reaches Raft, in order, and no more
// than pipelineInFlight are outstanding at once.
func TestPipelineCarriesEveryResponseInOrder(t *testing.T) {
	leader, follower := pipelinePair(t, func(int) raft.AppendEntriesResponse {
		return raft.AppendEntriesResponse{Term: 1, Success: true}
	})
	p, err := leader.AppendEntriesPipeline("f", follower)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 200
	got := make(chan error, 1)
	go func() {
		for i := range n {
			select {
			case f := <-p.Consumer():
				if idx := f.Request().PrevLogEntry; idx != uint64(i) || !f.Response().Success {
					got <- errors.New("out of order or failed")
					return
				}
			case <-time.After(time.Minute):
				got <- errors.New("a response never came")
				return
			}
		}
		got <- nil
	}()
	pl := p.(*pipeline)
	for i := range n {
		if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if k := len(pl.slots); k > pipelineInFlight {
			t.Fatalf("%d requests outstanding; at most %d may be", k, pipelineInFlight)
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
