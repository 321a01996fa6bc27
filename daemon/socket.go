package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// listenSocket creates the local API socket with the configured mode and
// group. A stale socket file left by a crashed daemon is replaced; a socket
// that a live daemon still answers on is an error.
func listenSocket(path, mode, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another process is serving it (is hotlined already running?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("socket %s: removing stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	m, _ := parseMode(mode)
	if err := os.Chmod(path, os.FileMode(m)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket_group: %w", err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: chown to group %s: %w", path, group, err)
		}
	}
	return ln, nil
}

// peerCred returns the credentials of the process at the other end of a
// Unix socket connection.
func peerCred(c net.Conn) (*syscall.Ucred, error) {
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, serr
}

// socketLimits bounds what the clients of the local socket can hold:
// connections, time and memory. See the README's "Limits and memory
// budget".
type socketLimits struct {
	MaxConns      int           // connections open at once; more wait in the kernel's listen backlog
	MaxWaiters    int           // requests parked at once in an inbox long-poll or a submit's wait
	HeaderTimeout time.Duration // to read a request's headers
	BodyTimeout   time.Duration // to read a request's body
	IdleTimeout   time.Duration // a keep-alive connection between requests
	WriteTimeout  time.Duration // to write an inbox reply
	InboxBudget   int64         // bytes of inbox replies in memory at once, all readers together
}

// apiLimits are the limits a new socket API takes. Tests lower them; the
// daemon never changes them.
var apiLimits = socketLimits{
	MaxConns:      1024,
	MaxWaiters:    512,
	HeaderTimeout: 10 * time.Second,
	BodyTimeout:   30 * time.Second,
	IdleTimeout:   60 * time.Second,
	WriteTimeout:  30 * time.Second,
	InboxBudget:   32 << 20,
}

// limitListener accepts at most cap(sem) connections at once: Accept
// waits while that many are open, so excess clients wait in the kernel's
// backlog (or are refused by it) and never take a descriptor here.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed (once).
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
