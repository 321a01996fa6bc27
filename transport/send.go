package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
)

// Pause between rounds over all (node, path) candidates when none replied:
// until the earliest backoff ends, within these bounds.
const (
	minRoundPause = 20 * time.Millisecond
	maxRoundPause = time.Second
)

// SendBatch sends b to some node of site b.To and returns the first reply.
// A batch of flash messages goes out on every healthy path at once.
//
// It tries the preferred node first (SetPreferred; otherwise the node that
// last acked a batch for the site), then the site's other nodes in config
// order; for each node the paths in preference order. An Ack with Error set
// is a reply and is returned as such. When a whole round fails it pauses
// briefly and starts over, until a reply arrives or ctx ends: then it
// returns an error wrapping ErrUnreachable and ctx's error. Give ctx a
// deadline.
//
// b.From must be our site, b.To another configured site, and b consistent
// (ErrBadBatch); its encoding must fit MaxFrame (ErrTooLarge). Concurrent
// calls are pipelined, each on its own QUIC stream. A batch may arrive more
// than once (a reply lost on one path, resent on another); the receiver's
// sequence numbers absorb that.
func (l *Link) SendBatch(ctx context.Context, b *Batch) (*Ack, error) {
	if b == nil {
		return nil, fmt.Errorf("transport: send batch: %w: nil batch", ErrBadBatch)
	}
	if l.closed.Load() {
		return nil, fmt.Errorf("transport: send batch to %s: %w", b.To, ErrClosed)
	}
	if b.From != l.self.Site {
		return nil, fmt.Errorf("transport: send batch: %w: From %q is not our site %q", ErrBadBatch, b.From, l.self.Site)
	}
	if b.To == l.self.Site {
		return nil, fmt.Errorf("transport: send batch: %w: To is our own site %q (batches are inter-site)", ErrBadBatch, b.To)
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("transport: send batch to %s: %w", b.To, err)
	}
	if len(l.sites[b.To]) == 0 {
		return nil, fmt.Errorf("transport: send batch: %w: no configured node of site %q", ErrUnknownPeer, b.To)
	}
	frame, err := sealFrame(appendBatch(newFrame(batchSizeHint(b)), b), frameBatch, l.cfg.MaxFrame)
	if err != nil {
		return nil, fmt.Errorf("transport: send batch to %s: %w", b.To, err)
	}
	cands := l.candidates(b.To)
	var ack *Ack
	var pp *peerPath
	if b.Kind == BatchMessages && b.Precedence == queue.Flash {
		ack, pp, err = l.sendEveryPath(ctx, cands, frame)
	} else {
		ack, pp, err = l.sendOne(ctx, cands, frame)
	}
	if err != nil {
		return nil, fmt.Errorf("transport: send %s batch to %s: %w", b.Kind, b.To, err)
	}
	if ack.Error == "" {
		l.mu.Lock()
		l.lastAcked[b.To] = pp
		l.mu.Unlock()
	}
	return ack, nil
}

// Call sends c to node, a node of our own site, trying its paths in
// preference order, in rounds like SendBatch until a reply arrives or ctx
// ends (an error wrapping ErrUnreachable). A Reply with Error set is a reply.
func (l *Link) Call(ctx context.Context, node string, c *Call) (*Reply, error) {
	if c == nil {
		return nil, errors.New("transport: call: nil call")
	}
	if l.closed.Load() {
		return nil, fmt.Errorf("transport: call %s on %s: %w", c.Op, node, ErrClosed)
	}
	pr, ok := l.peers[pki.Identity{Site: l.self.Site, Node: node}]
	if !ok {
		return nil, fmt.Errorf("transport: call %s: %w: no node %q in our site %q", c.Op, ErrUnknownPeer, node, l.self.Site)
	}
	frame, err := sealFrame(appendCall(newFrame(len(c.Op)+len(c.Body)+16), c), frameCall, l.cfg.MaxFrame)
	if err != nil {
		return nil, fmt.Errorf("transport: call %s on %s: %w", c.Op, node, err)
	}
	var reply *Reply
	_, err = l.tryAll(ctx, pr.paths, frame, frameReply, func(body []byte) error {
		r, err := decodeReply(body)
		reply = r
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("transport: call %s on %s: %w", c.Op, node, err)
	}
	return reply, nil
}

func (l *Link) sendOne(ctx context.Context, cands []*peerPath, frame []byte) (*Ack, *peerPath, error) {
	var ack *Ack
	pp, err := l.tryAll(ctx, cands, frame, frameAck, func(body []byte) error {
		a, err := decodeAck(body)
		ack = a
		return err
	})
	return ack, pp, err
}

// sendEveryPath sends frame on every healthy path at once: to the first
// up candidate of each path, and through the usual walk over all
// candidates, which can fall over to paths that are not up yet. The first
// reply wins and the other copies are abandoned; copies that arrive
// anyway are absorbed by the receiver's sequence numbers.
func (l *Link) sendEveryPath(ctx context.Context, cands []*peerPath, frame []byte) (*Ack, *peerPath, error) {
	var groups [][]*peerPath
	for _, ep := range l.endpoints {
		var g []*peerPath
		up := false
		for _, pp := range cands {
			if pp.ep == ep {
				g = append(g, pp)
				up = up || pp.isUp()
			}
		}
		if up {
			groups = append(groups, g)
		}
	}
	if len(groups) < 2 {
		return l.sendOne(ctx, cands, frame)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		ack  *Ack
		pp   *peerPath
		err  error
		main bool
	}
	results := make(chan result, len(groups)+1)
	race := func(pps []*peerPath, main bool) {
		ack, pp, err := l.sendOne(rctx, pps, frame)
		results <- result{ack, pp, err, main}
	}
	go race(cands, true)
	for _, g := range groups {
		go race(g, false)
	}
	var mainErr error
	for range len(groups) + 1 {
		r := <-results
		if r.err == nil {
			return r.ack, r.pp, nil
		}
		if r.main {
			mainErr = r.err
		}
	}
	return nil, nil, mainErr
}

// CallSite sends c to a node of another site, any node that answers, by the
// same order and rules as SendBatch; path, if not "", restricts it to that
// path (a down path then fails until ctx ends). It returns the reply and
// the node that sent it. The remote node's routing table (Config.Calls)
// decides, by our certified identity, which operations another site may
// call.
func (l *Link) CallSite(ctx context.Context, site, path string, c *Call) (*Reply, string, error) {
	if c == nil {
		return nil, "", errors.New("transport: call: nil call")
	}
	if l.closed.Load() {
		return nil, "", fmt.Errorf("transport: call %s on %s: %w", c.Op, site, ErrClosed)
	}
	if site == l.self.Site {
		return nil, "", fmt.Errorf("transport: call %s: %w: %q is our own site (use Call)", c.Op, ErrUnknownPeer, site)
	}
	if len(l.sites[site]) == 0 {
		return nil, "", fmt.Errorf("transport: call %s: %w: no configured node of site %q", c.Op, ErrUnknownPeer, site)
	}
	cands := l.candidates(site)
	if path != "" {
		if _, ok := l.byPath[path]; !ok {
			return nil, "", fmt.Errorf("transport: call %s on %s: %w %q", c.Op, site, ErrUnknownPath, path)
		}
		var on []*peerPath
		for _, pp := range cands {
			if pp.ep.name == path {
				on = append(on, pp)
			}
		}
		if len(on) == 0 {
			return nil, "", fmt.Errorf("transport: call %s on %s: no node of %s has an address on path %s", c.Op, site, site, path)
		}
		cands = on
	}
	frame, err := sealFrame(appendCall(newFrame(len(c.Op)+len(c.Body)+16), c), frameCall, l.cfg.MaxFrame)
	if err != nil {
		return nil, "", fmt.Errorf("transport: call %s on %s: %w", c.Op, site, err)
	}
	var reply *Reply
	pp, err := l.tryAll(ctx, cands, frame, frameReply, func(body []byte) error {
		r, err := decodeReply(body)
		reply = r
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("transport: call %s on %s: %w", c.Op, site, err)
	}
	return reply, pp.peer.Node, nil
}

// candidates lists the (node, path) pairs of site in the order SendBatch
// tries them.
func (l *Link) candidates(site string) []*peerPath {
	l.mu.Lock()
	first, ok := l.preferred[site]
	if pp := l.lastAcked[site]; !ok && pp != nil {
		first = pp.peer.Node
	}
	l.mu.Unlock()
	nodes := l.sites[site]
	out := make([]*peerPath, 0, len(nodes)*len(l.endpoints))
	if pr, ok := l.peers[pki.Identity{Site: site, Node: first}]; ok {
		out = append(out, pr.paths...)
	}
	for _, pr := range nodes {
		if pr.id.Node != first {
			out = append(out, pr.paths...)
		}
	}
	return out
}

// tryAll sends frame to the candidates until one replies, and returns it.
//
// A round walks the candidates in order. One with a live connection gets
// the request at once; one in redial backoff is skipped; for one without a
// connection a dial is started and the walk waits for it, but only for
// dialPatience: then it moves on to the next candidate while that dial goes
// on. Whenever a dial ends the walk starts again from the top, so the most
// preferred connected candidate is always the one used, and a dead node
// costs at most dialPatience, not a full handshake timeout. When every
// candidate has been tried, the round pauses until the earliest backoff
// ends and starts over. tryAll stops when ctx ends (ErrUnreachable) or the
// link closes (ErrClosed).
func (l *Link) tryAll(ctx context.Context, pps []*peerPath, frame []byte, want byte, decode func([]byte) error) (*peerPath, error) {
	errs := make([]error, len(pps))
	tried := make([]bool, len(pps))
	patience := l.dialPatience()
	for {
		clear(tried)
		var earliest time.Time // earliest end of a backoff seen this round
		waitIdx, waitUntil := -1, time.Time{}
		for {
			ev := l.dialEvents() // before looking, so no wake-up is missed
			pending, blocked := false, false
			for i, pp := range pps {
				if tried[i] {
					continue
				}
				if ctx.Err() != nil {
					return nil, unreachable(ctx, errs)
				}
				conn, dialing, err := pp.ready(false)
				switch {
				case errors.Is(err, ErrClosed):
					return nil, ErrClosed
				case err != nil:
					tried[i] = true
					errs[i] = fmt.Errorf("%s: %w", pp, err)
					var eb *errBackoff
					if errors.As(err, &eb) && (earliest.IsZero() || eb.until.Before(earliest)) {
						earliest = eb.until
					}
					continue
				case dialing:
					pending = true
					if i > waitIdx {
						waitIdx, waitUntil = i, time.Now().Add(patience)
					}
					if i == waitIdx && time.Now().Before(waitUntil) {
						blocked = true
					}
				default:
					tried[i] = true
					if errs[i] = pp.request(ctx, conn, frame, want, decode); errs[i] == nil {
						return pp, nil
					}
				}
				if blocked {
					break
				}
			}
			if !pending {
				break
			}
			var patienceEnds <-chan time.Time
			var t *time.Timer
			if blocked {
				t = time.NewTimer(time.Until(waitUntil))
				patienceEnds = t.C
			}
			select {
			case <-ev:
			case <-patienceEnds:
			case <-ctx.Done():
			case <-l.ctx.Done():
			}
			if t != nil {
				t.Stop()
			}
			if l.ctx.Err() != nil {
				return nil, ErrClosed
			}
			if ctx.Err() != nil {
				return nil, unreachable(ctx, errs)
			}
		}
		pause := 5 * minRoundPause
		if !earliest.IsZero() {
			pause = min(max(time.Until(earliest), minRoundPause), maxRoundPause)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, unreachable(ctx, errs)
		case <-l.ctx.Done():
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
	}
}

// dialPatience is how long tryAll waits for a candidate's dial before also
// trying the next candidate: a third of the handshake timeout, at most 1s
// (a QUIC handshake takes about one round trip, under a second even by
// geostationary satellite).
func (l *Link) dialPatience() time.Duration {
	return min(max(l.cfg.HandshakeTimeout/3, 50*time.Millisecond), time.Second)
}

func unreachable(ctx context.Context, errs []error) error {
	var detail []string
	for _, err := range errs {
		if err != nil {
			detail = append(detail, "["+err.Error()+"]")
		}
	}
	if len(detail) == 0 {
		return fmt.Errorf("%w (%w)", ErrUnreachable, context.Cause(ctx))
	}
	return fmt.Errorf("%w (%w); last errors: %s", ErrUnreachable, context.Cause(ctx), strings.Join(detail, " "))
}
