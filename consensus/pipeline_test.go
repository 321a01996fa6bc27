package consensus

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// pipelinePair opens a pipeline from our transport to a follower-side
// network transport on loopback TCP. The follower answers the i-th
// AppendEntries (from 0) with answer(i); received counts what it got.
func pipelinePair(t *testing.T, answer func(i int) (raft.AppendEntriesResponse, error)) (p raft.AppendPipeline, received *atomic.Int64) {
	t.Helper()
	follower, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	received = new(atomic.Int64)
	stop := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		for i := 0; ; i++ {
			select {
			case rpc := <-follower.Consumer():
				received.Add(1)
				resp, err := answer(i)
				rpc.Respond(&resp, err)
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
	p, err = leader.AppendEntriesPipeline("f", follower.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		leader.Close()
		close(stop)
		<-served
		follower.Close()
	})
	return p, received
}

// sendAll sends n appends (PrevLogEntry 0..n-1, term 1) in the background
// and reports the first error, or nil once all are sent.
func sendAll(p raft.AppendPipeline, n int, sent *atomic.Int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: uint64(i)}, new(raft.AppendEntriesResponse)); err != nil {
				done <- err
				return
			}
			if sent != nil {
				sent.Add(1)
			}
		}
		done <- nil
	}()
	return done
}

func within(t *testing.T, d time.Duration, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: nothing after %v", what, d)
		return nil
	}
}

// TestPipelineEndsAfterRejection plays hashicorp/raft's pipelined
// replication against a follower whose third answer makes Raft's decoder
// stop: a rejection, a newer term, an error. The decoder stops reading
// there, as pipelineDecode does, while the sender keeps sending without
// looking at it. With the network transport's own pipeline the sender then
// blocks for good (hashicorp/raft issue 612); ours returns
// errPipelineRejected.
func TestPipelineEndsAfterRejection(t *testing.T) {
	const stopAt = 2
	for _, tc := range []struct {
		name string
		resp raft.AppendEntriesResponse
		err  error
	}{
		{"rejected", raft.AppendEntriesResponse{Term: 1, Success: false}, nil},
		{"newer term", raft.AppendEntriesResponse{Term: 2, Success: true}, nil},
		{"error", raft.AppendEntriesResponse{}, errors.New("disk full")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := pipelinePair(t, func(i int) (raft.AppendEntriesResponse, error) {
				if i == stopAt {
					return tc.resp, tc.err
				}
				return raft.AppendEntriesResponse{Term: 1, Success: true}, nil
			})
			decoded := make(chan error, 1)
			go func() { // pipelineDecode
				n := 0
				for f := range p.Consumer() {
					n++
					if req, resp := f.Request(), f.Response(); resp.Term > req.Term || !resp.Success {
						if n != stopAt+1 {
							decoded <- fmt.Errorf("the decoder stopped at response %d; want %d", n, stopAt+1)
							return
						}
						decoded <- nil
						return
					}
				}
			}()
			sent := sendAll(p, 100, nil)
			if err := within(t, time.Minute, "the decoder", decoded); err != nil {
				t.Fatal(err)
			}
			if err := within(t, time.Minute, "the sender after the decoder stopped", sent); !errors.Is(err, errPipelineRejected) {
				t.Fatalf("sending after the decoder stopped: %v; want errPipelineRejected", err)
			}
		})
	}
}

// TestPipelineBoundsInFlight: while Raft takes no response, at most
// pipelineInFlight appends reach the follower and the sender waits; Close
// ends the wait. Without the pipeline's own bound the forwarder would
// take one response off the network transport's hands and let a third
// append go out.
func TestPipelineBoundsInFlight(t *testing.T) {
	p, received := pipelinePair(t, func(int) (raft.AppendEntriesResponse, error) {
		return raft.AppendEntriesResponse{Term: 1, Success: true}, nil
	})
	var sent atomic.Int64
	done := sendAll(p, 10, &sent)
	deadline := time.Now().Add(time.Minute)
	for received.Load() < pipelineInFlight && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for a send too many
	if n := received.Load(); n != pipelineInFlight {
		t.Fatalf("the follower received %d appends while Raft took no response; want %d", n, pipelineInFlight)
	}
	select {
	case err := <-done:
		t.Fatalf("the sender finished (%v) while Raft took no response", err)
	default:
	}
	p.Close()
	if err := within(t, time.Minute, "the sender after Close", done); err == nil {
		t.Fatal("every append was sent on a closed pipeline")
	}
	if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1}, new(raft.AppendEntriesResponse)); err == nil {
		t.Fatal("AppendEntries on a closed pipeline succeeded")
	}
}

// TestPipelineCarriesEveryResponseInOrder: with a follower that accepts
// everything, each request's response reaches Raft, in order.
func TestPipelineCarriesEveryResponseInOrder(t *testing.T) {
	p, _ := pipelinePair(t, func(int) (raft.AppendEntriesResponse, error) {
		return raft.AppendEntriesResponse{Term: 1, Success: true}, nil
	})
	const n = 200
	got := make(chan error, 1)
	go func() {
		for i := range n {
			f := <-p.Consumer()
			if idx := f.Request().PrevLogEntry; idx != uint64(i) || !f.Response().Success {
				got <- fmt.Errorf("response %d: request %d, success %v", i, idx, f.Response().Success)
				return
			}
		}
		got <- nil
	}()
	if err := within(t, time.Minute, "sending", sendAll(p, n, nil)); err != nil {
		t.Fatal(err)
	}
	if err := within(t, time.Minute, "the responses", got); err != nil {
		t.Fatal(err)
	}
}
