package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
)

// lossWindow is how many probe intervals the loss figure covers.
const lossWindow = 50

// pktCount is a snapshot of a connection's packet counters.
type pktCount struct{ sent, lost uint64 }

// probeStats are a peerPath's probing figures, guarded by its mu.
type probeStats struct {
	lastEcho    time.Time     // last probe answered, or connection established
	srtt        time.Duration // smoothed probe round trip (RFC 6298 weights)
	outstanding int           // probes sent and not yet answered or given up
	lost        uint64        // probes not answered within the detection time
	// QUIC's packet counters of the current connection, one snapshot per
	// probe interval, for the loss over the last lossWindow intervals.
	window  [lossWindow]pktCount
	n, next int
}

func (ps *probeStats) sample(c pktCount) {
	ps.window[ps.next] = c
	ps.next = (ps.next + 1) % lossWindow
	ps.n = min(ps.n+1, lossWindow)
}

// resetWindow forgets the packet counters (a new connection starts at 0).
func (ps *probeStats) resetWindow() { ps.n, ps.next = 0, 0 }

// lossPct is the share of packets QUIC declared lost over the window, in %.
func (ps *probeStats) lossPct() float64 {
	if ps.n < 2 {
		return 0
	}
	newest := ps.window[(ps.next+lossWindow-1)%lossWindow]
	oldest := ps.window[(ps.next+lossWindow-ps.n)%lossWindow]
	if newest.sent <= oldest.sent {
		return 0
	}
	return 100 * float64(newest.lost-oldest.lost) / float64(newest.sent-oldest.sent)
}

// detectTime is how long a connected path may go without a probe answer
// before it is declared down: ProbeInterval × ProbeMisses.
func (l *Link) detectTime() time.Duration {
	return l.cfg.ProbeInterval * time.Duration(l.cfg.ProbeMisses)
}

// probeLoop keeps one (peer, path) warm and watched, BFD-style: every
// ProbeInterval it sends a probe on the connection (dialling first if there
// is none), and when no probe has been answered for ProbeMisses intervals
// it declares the path down and closes the connection. Requests in flight
// on it fail at once, and the senders move to the next path. Then it
// redials, with backoff, until the path answers again. QUIC keepalives run
// underneath; the probes are what measure RTT and loss and what notice a
// silent cut quickly.
func (pp *peerPath) probeLoop() {
	l := pp.link
	t := time.NewTicker(l.cfg.ProbeInterval)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		conn, _, err := pp.ready(true)
		if errors.Is(err, ErrClosed) {
			return
		}
		if conn == nil {
			continue
		}
		pp.mu.Lock()
		if pp.conn != conn {
			pp.mu.Unlock()
			continue
		}
		if silent := time.Since(pp.probe.lastEcho); silent > l.detectTime() {
			err := fmt.Errorf("no probe answered for %v (%d probes of %v)", silent.Round(time.Millisecond), l.cfg.ProbeMisses, l.cfg.ProbeInterval)
			pp.failLocked(conn, err)
			pp.mu.Unlock()
			conn.CloseWithError(codePathDown, err.Error())
			continue
		}
		cs := conn.ConnectionStats()
		pp.probe.sample(pktCount{sent: cs.PacketsSent, lost: cs.PacketsLost})
		if pp.probe.outstanding > l.cfg.ProbeMisses {
			pp.mu.Unlock()
			continue
		}
		pp.probe.outstanding++
		pp.mu.Unlock()
		seq++
		n := seq
		if !l.goTracked(func() { pp.sendProbe(conn, n) }) {
			return
		}
	}
}

// sendProbe sends one probe on conn and records the answer or the loss.
func (pp *peerPath) sendProbe(conn *quic.Conn, seq uint64) {
	l := pp.link
	ctx, cancel := context.WithTimeout(l.ctx, l.detectTime())
	defer cancel()
	body := binary.BigEndian.AppendUint64(nil, seq)
	frame, _ := sealFrame(append(newFrame(len(body)), body...), frameProbe, l.cfg.MaxFrame)
	start := time.Now()
	err := pp.exchange(ctx, conn, frame, frameEcho, func(echo []byte) error {
		if !bytes.Equal(echo, body) {
			return protocolErr("probe echo does not match the probe")
		}
		return nil
	})
	rtt := time.Since(start)
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.probe.outstanding--
	if l.ctx.Err() != nil {
		return
	}
	if err != nil {
		pp.probe.lost++
		if v, ok := asViolation(err); ok && pp.conn == conn {
			pp.failLocked(conn, err)
			go conn.CloseWithError(v.code, v.msg)
		}
		return
	}
	pp.stats.lastOK = time.Now()
	if pp.conn == conn {
		pp.probe.lastEcho = pp.stats.lastOK
	}
	if pp.probe.srtt == 0 {
		pp.probe.srtt = rtt
	} else {
		pp.probe.srtt = (7*pp.probe.srtt + rtt) / 8
	}
}

// AdminMode is the administrative state of a path on this node.
type AdminMode int32

const (
	// AdminUp: the path is in service.
	AdminUp AdminMode = iota
	// AdminClose: the path is out of service. Its connections are closed
	// with a reason, so peers notice at once; nothing is sent or accepted
	// on it.
	AdminClose
	// AdminDrop: the path silently drops every packet in and out, like a
	// cut cable. Nobody is told: this node's probes and the peers' probes
	// detect it, which is what a drill measures.
	AdminDrop
)

func (m AdminMode) String() string {
	switch m {
	case AdminUp:
		return "up"
	case AdminClose:
		return "close"
	case AdminDrop:
		return "drop"
	}
	return fmt.Sprintf("AdminMode(%d)", int32(m))
}

// ErrUnknownPath is returned for a path name the link does not have.
var ErrUnknownPath = errors.New("transport: unknown path")

// SetPathAdmin changes the administrative state of one of this node's
// paths. Setting the state a path already has changes nothing.
func (l *Link) SetPathAdmin(path string, mode AdminMode) error {
	if mode < AdminUp || mode > AdminDrop {
		return fmt.Errorf("transport: set path %s: invalid mode %v", path, mode)
	}
	ep, ok := l.byPath[path]
	if !ok {
		return fmt.Errorf("%w %q (this node has %v)", ErrUnknownPath, path, l.pathNames())
	}
	if l.closed.Load() {
		return ErrClosed
	}
	old := AdminMode(ep.admin.Swap(int32(mode)))
	if old == mode {
		return nil
	}
	ep.gate.drop.Store(mode == AdminDrop)
	var conns []*quic.Conn
	for _, pr := range l.order {
		for _, pp := range pr.paths {
			if pp.ep != ep {
				continue
			}
			pp.mu.Lock()
			if mode == AdminClose && pp.conn != nil {
				conns = append(conns, pp.conn)
				pp.dropLocked(pp.conn)
			}
			if mode == AdminUp {
				pp.fails, pp.retryAt = 0, time.Time{}
			}
			pp.since = time.Now()
			pp.mu.Unlock()
		}
	}
	if mode == AdminClose {
		l.mu.Lock()
		for c, in := range l.inbound {
			if in.ep == ep {
				conns = append(conns, c)
			}
		}
		l.mu.Unlock()
		for _, c := range conns {
			c.CloseWithError(codePathDisabled, "path "+path+" disabled on "+l.self.String())
		}
	}
	if mode == AdminUp {
		l.log.Info("transport: path enabled by operator", "path", path, "was", old.String())
	} else {
		l.log.Warn("transport: path disabled by operator", "path", path, "mode", mode.String())
	}
	return nil
}

// PathAdmin returns the administrative state of one of this node's paths.
func (l *Link) PathAdmin(path string) (AdminMode, error) {
	ep, ok := l.byPath[path]
	if !ok {
		return AdminUp, fmt.Errorf("%w %q (this node has %v)", ErrUnknownPath, path, l.pathNames())
	}
	return AdminMode(ep.admin.Load()), nil
}

// PathNames returns this node's path names in preference order.
func (l *Link) PathNames() []string { return l.pathNames() }

func (l *Link) pathNames() []string {
	out := make([]string, len(l.endpoints))
	for i, ep := range l.endpoints {
		out[i] = ep.name
	}
	return out
}
