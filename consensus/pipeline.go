package consensus

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// pipelineInFlight is how many pipelined AppendEntries may be sent and not
// yet taken by Raft's decoder: the same two as hashicorp/raft's default
// (DefaultMaxRPCsInFlight, which newRaftTransport's callers leave as it
// is), one awaiting its response while the next is sent.
const pipelineInFlight = 2

// errPipelineRejected ends a pipeline after a response Raft's decoder
// stopped at: the follower rejected an append (its log does not match,
// or it has a newer term) or the request failed. Raft logs this error,
// closes the pipeline and goes back to one AppendEntries at a time, which
// finds where the follower's log and the leader's agree (and logs a
// failure that lasts at Error).
var errPipelineRejected = errors.New("consensus: pipeline ended: the follower rejected an append or the request failed; replicating one append at a time")

// raftTransport is hashicorp/raft's network transport with a pipeline that
// cannot deadlock.
//
// In hashicorp/raft v1.8.0 (issue 612, open) Raft's pipeline decoder returns
// at the first response that is not a success, and nothing reads the
// pipeline after that; the transport's own decoder then blocks handing on
// the next response, the sender blocks handing it the next request, and
// the sender never gets back to the select that would tell it the decoder
// is gone. The follower is left with heartbeats and no entries for good,
// and the leader's Shutdown waits for the sender forever. A follower
// answers so whenever its log does not match, and one that stands by on a
// full disk does each time.
//
// Raft's decoder stops exactly when a response is not a success or carries
// a newer term, and the pipeline here sees each response before Raft does.
// So once it has handed Raft such a response it drains what is left
// itself, and its AppendEntries returns errPipelineRejected instead of
// blocking; Raft's sender then stops and closes the pipeline, as it does
// for any failed send.
type raftTransport struct {
	*raft.NetworkTransport
}

func newRaftTransport(cfg *raft.NetworkTransportConfig) *raftTransport {
	return &raftTransport{raft.NewNetworkTransportWithConfig(cfg)}
}

// AppendEntriesPipeline wraps the network transport's pipeline.
func (t *raftTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	inner, err := t.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return newPipeline(inner), nil
}

// pipeline hands Raft the inner pipeline's responses one at a time, and
// stops handing them on after one Raft's decoder stops at.
type pipeline struct {
	inner    raft.AppendPipeline
	out      chan raft.AppendFuture
	slots    chan struct{} // a token for each request sent and not yet taken by Raft
	rejected chan struct{} // closed once Raft's decoder has stopped reading
	closed   chan struct{}
	close    sync.Once
}

func newPipeline(inner raft.AppendPipeline) *pipeline {
	p := &pipeline{
		inner:    inner,
		out:      make(chan raft.AppendFuture),
		slots:    make(chan struct{}, pipelineInFlight),
		rejected: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	go p.forward()
	return p
}

// AppendEntries sends a request once fewer than pipelineInFlight are
// outstanding; it returns errPipelineRejected once Raft's decoder has
// stopped, and raft.ErrPipelineShutdown once the pipeline is closed.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case p.slots <- struct{}{}:
	case <-p.rejected:
		return nil, errPipelineRejected
	case <-p.closed:
		return nil, raft.ErrPipelineShutdown
	}
	// A select picks at random among what is ready, and the slot may be
	// the one the response Raft stopped at freed.
	select {
	case <-p.rejected:
		<-p.slots
		return nil, errPipelineRejected
	case <-p.closed:
		<-p.slots
		return nil, raft.ErrPipelineShutdown
	default:
	}
	f, err := p.inner.AppendEntries(args, resp)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return f, nil
}

// Consumer returns the responses, in the order their requests were sent.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.out }

// Close closes the inner pipeline, which cancels what is in flight.
func (p *pipeline) Close() error {
	p.close.Do(func() { close(p.closed) })
	return p.inner.Close()
}

// forward moves responses from the inner pipeline to Raft until Raft's
// decoder stops or the pipeline closes, then drains the inner pipeline so
// that neither its decoder nor a sender blocks.
func (p *pipeline) forward() {
	in := p.inner.Consumer()
	for {
		var f raft.AppendFuture
		select {
		case f = <-in:
		case <-p.closed:
			return
		}
		select {
		case p.out <- f:
		case <-p.closed:
			return
		}
		if decoderStops(f) {
			close(p.rejected) // before the slot is free: no send after this one
			<-p.slots
			break
		}
		<-p.slots
	}
	for {
		select {
		case <-in:
			<-p.slots
		case <-p.closed:
			return
		}
	}
}

// decoderStops reports whether hashicorp/raft's pipelineDecode returns
// after reading f: a response that is not a success (an error leaves it
// zero) or that carries a newer term than its request.
func decoderStops(f raft.AppendFuture) bool {
	req, resp := f.Request(), f.Response()
	return f.Error() != nil || !resp.Success || resp.Term > req.Term
}
