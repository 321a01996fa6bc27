package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// submitter groups concurrent submissions into shared Raft entries (group
// commit): while one entry is being committed, the next submissions queue
// up and go together in the following one.
type submitter struct {
	submitterDeps
	reqs chan *submitReq
	sem  chan struct{} // entries in flight
	wg   sync.WaitGroup
	once sync.Once
	quit chan struct{}
}

type submitReq struct {
	ctx  context.Context
	item queue.SubmitItem
	done chan submitDone
}

type submitDone struct {
	res queue.SubmitResult
	err error
}

// groupsInFlight is how many group entries may be committing at once.
// Fewer make bigger groups: at 32 concurrent submitters in the six-node
// lab, 4 made groups of about 6 submissions (0.23 entries per message on
// the origin's log), 1 groups of about 14 (0.17) but no overlap of one
// group's commit with the next group's proposal; 2 keeps that overlap.
const (
	maxGroupItems  = 1024
	maxGroupBytes  = 8 << 20
	groupsInFlight = 2
)

// submitterDeps is what a submitter uses: its site (the origin of every
// submission), the default deadline of a group, the node's context, the
// commit path and the metric of committed submissions.
type submitterDeps struct {
	site      string
	timeout   time.Duration
	stop      context.Context
	propose   func(context.Context, *queue.Command) (*queue.Result, error)
	submitted func(n int)
}

func newSubmitter(d submitterDeps) *submitter {
	s := &submitter{submitterDeps: d, reqs: make(chan *submitReq, 4096), sem: make(chan struct{}, groupsInFlight), quit: make(chan struct{})}
	s.wg.Add(1)
	go s.loop()
	return s
}

// submit commits one item and returns its result, or an error when ctx
// ends first (the item may still commit; its ID makes a retry safe).
func (s *submitter) submit(ctx context.Context, item queue.SubmitItem) (queue.SubmitResult, error) {
	r := &submitReq{ctx: ctx, item: item, done: make(chan submitDone, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return queue.SubmitResult{}, ctx.Err()
	case <-s.quit:
		return queue.SubmitResult{}, errShuttingDown
	}
	select {
	case d := <-r.done:
		return d.res, d.err
	case <-ctx.Done():
		return queue.SubmitResult{}, ctx.Err()
	}
}

func (s *submitter) loop() {
	defer s.wg.Done()
	for {
		var first *submitReq
		select {
		case first = <-s.reqs:
		case <-s.quit:
			return
		}
		select {
		case s.sem <- struct{}{}:
		case <-s.quit:
			first.done <- submitDone{err: errShuttingDown}
			return
		}
		group := []*submitReq{first}
		size := len(first.item.Payload)
	drain:
		for len(group) < maxGroupItems && size < maxGroupBytes {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				size += len(r.item.Payload)
			default:
				break drain
			}
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.commit(group)
		}()
	}
}

// commit proposes one group; the deadline is the latest of its members'.
func (s *submitter) commit(group []*submitReq) {
	var live []*submitReq
	deadline := time.Time{}
	for _, r := range group {
		if r.ctx.Err() != nil {
			continue // caller gave up before we proposed: nothing was stored
		}
		live = append(live, r)
		if d, ok := r.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(s.timeout)
	}
	ctx, cancel := context.WithDeadline(s.stop, deadline)
	defer cancel()
	cmd := &queue.Command{Op: queue.OpSubmit, Time: time.Now().UnixNano(), Submit: &queue.Submit{Origin: s.site}}
	for _, r := range live {
		cmd.Submit.Items = append(cmd.Submit.Items, r.item)
	}
	res, err := s.propose(ctx, cmd)
	stored := 0
	for i, r := range live {
		if err != nil {
			r.done <- submitDone{err: err}
			continue
		}
		if sr := res.Submit[i]; sr.Err == "" && !sr.Existing {
			stored++ // a new message, not a refusal or a repeat
		}
		r.done <- submitDone{res: res.Submit[i]}
	}
	s.submitted(stored)
}

func (s *submitter) close() {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
}
