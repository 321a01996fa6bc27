package transport

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// gatedConn is a path's UDP socket with a gate an operator can shut: while
// drop is set every packet in and out vanishes without an error, as on a
// cut cable. It deliberately exposes only net.PacketConn (plus the buffer
// setters), so that quic-go reads and writes through it rather than
// through batched system calls that would bypass the gate.
type gatedConn struct {
	udp  *net.UDPConn
	drop atomic.Bool
}

var _ net.PacketConn = (*gatedConn)(nil)

func (g *gatedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.udp.ReadFrom(p)
		if err != nil || !g.drop.Load() {
			return n, addr, err
		}
	}
}

func (g *gatedConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if g.drop.Load() {
		return len(p), nil
	}
	return g.udp.WriteTo(p, addr)
}

func (g *gatedConn) Close() error                          { return g.udp.Close() }
func (g *gatedConn) LocalAddr() net.Addr                   { return g.udp.LocalAddr() }
func (g *gatedConn) SetDeadline(t time.Time) error         { return g.udp.SetDeadline(t) }
func (g *gatedConn) SetReadDeadline(t time.Time) error     { return g.udp.SetReadDeadline(t) }
func (g *gatedConn) SetWriteDeadline(t time.Time) error    { return g.udp.SetWriteDeadline(t) }
func (g *gatedConn) SetReadBuffer(n int) error             { return g.udp.SetReadBuffer(n) }
func (g *gatedConn) SetWriteBuffer(n int) error            { return g.udp.SetWriteBuffer(n) }
func (g *gatedConn) SyscallConn() (syscall.RawConn, error) { return g.udp.SyscallConn() }
