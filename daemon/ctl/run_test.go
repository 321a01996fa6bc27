package ctl

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/daemon/client"
)

// run calls Run with a socket that does not exist, so any request would
// fail with an unreachable error.
func run(t *testing.T, stdin string, args ...string) (stdout, stderr string, sock string, err error) {
	t.Helper()
	sock = filepath.Join(t.TempDir(), "absent.sock")
	var out, errb bytes.Buffer
	err = Run(context.Background(), append([]string{"--socket", sock}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), sock, err
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "needs a command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"status", "--bogus"}, "unknown flag: --bogus"},
		{"status args", []string{"status", "extra"}, "takes no arguments"},

		{"send no to", []string{"send"}, "--to SITE is required"},
		{"send bad to", []string{"send", "--to", "Alpha"}, "--to"},
		{"send bad precedence", []string{"send", "--to", "alpha", "--precedence", "urgent"}, `--precedence "urgent" is not one of flash, immediate, priority, routine`},
		{"send bad wait", []string{"send", "--to", "alpha", "--wait", "seen"}, `--wait "seen" is not one of queued, delivered, read`},
		{"send bad ttl", []string{"send", "--to", "alpha", "--ttl", "soon"}, `invalid argument "soon" for "--ttl"`},
		{"send negative ttl", []string{"send", "--to", "alpha", "--ttl", "-1s"}, "--ttl -1s is negative"},
		{"send zero timeout", []string{"send", "--to", "alpha", "--timeout", "0s"}, "--timeout 0s must be positive"},
		{"send two files", []string{"send", "--to", "alpha", "a", "b"}, "at most one FILE"},

		{"recv max zero", []string{"recv", "--max", "0"}, "--max 0 is out of range"},
		{"recv max big", []string{"recv", "--max", "1001"}, "--max 1001 is out of range"},
		{"recv wait long", []string{"recv", "--wait", "6m"}, "--wait 6m0s is out of range"},
		{"recv follow no wait", []string{"recv", "--follow", "--wait", "0s"}, "--wait must be positive with --follow"},
		{"recv bad after", []string{"recv", "--after", "-3"}, `invalid argument "-3" for "--after"`},
		{"recv args", []string{"recv", "x"}, "takes no arguments"},

		{"get no id", []string{"get"}, "exactly one message ID"},
		{"get two ids", []string{"get", "a", "b"}, "exactly one message ID"},
		{"get empty id", []string{"get", ""}, "message ID is empty"},

		{"pki alone", []string{"pki"}, "pki needs a command"},
		{"pki unknown", []string{"pki", "renew"}, `unknown command "renew"`},
		{"pki init no dir", []string{"pki", "init"}, "--dir DIR is required"},
		{"pki issue no site", []string{"pki", "issue", "--dir", "x", "--node", "a1"}, "--site SITE is required"},
		{"pki issue no node", []string{"pki", "issue", "--dir", "x", "--site", "alpha"}, "--node NODE is required"},
		{"pki issue bad site", []string{"pki", "issue", "--dir", "x", "--site", "al_pha", "--node", "a1"}, "--site: pki: name"},
		{"pki issue bad node", []string{"pki", "issue", "--dir", "x", "--site", "alpha", "--node", "-a1"}, "--node: pki: name"},

		{"bench no recv", []string{"bench", "--to", "bravo"}, "--recv-socket FILE is required"},
		{"bench no to", []string{"bench", "--recv-socket", "/x"}, "--to SITE is required"},
		{"bench zero n", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--n", "0"}, "--n 0 is out of range (at least 1, at most 1000000)"},
		{"bench small size", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--size", "10"}, "--size 10 is too small (at least 24 bytes"},
		{"bench zero concurrency", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--concurrency", "0"}, "--concurrency 0 is out of range (at least 1, at most 1024)"},
		{"bench negative rate", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--rate", "-5"}, "--rate -5 is negative"},
		{"bench zero timeout", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--timeout", "0s"}, "--timeout 0s must be positive"},
		{"bench bad precedence", []string{"bench", "--recv-socket", "/x", "--to", "bravo", "--precedence", "low"}, `--precedence "low"`},
		{"bench bad to", []string{"bench", "--recv-socket", "/x", "--to", "BRAVO"}, "--to: pki: name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUsageError(t, "payload", tt.args, tt.want)
		})
	}
}

// TestValidArgsReachForDaemon checks the other side of TestUsageErrors:
// valid command lines get past validation and fail only at the socket,
// with an error naming it.
func TestValidArgsReachForDaemon(t *testing.T) {
	tests := [][]string{
		{"send", "--to", "alpha", "--precedence", "flash", "--id", "k1", "--ttl", "1h", "--wait", "read", "--timeout", "5s"},
		{"send", "--to", "alpha", "-"},
		{"recv", "--ack", "--max", "1000", "--wait", "1s", "--after", "7", "--json"},
		{"get", "0192d6b0-0000-7000-8000-000000000000"},
		{"status", "--json"},
		{"bench", "--recv-socket", "/nonexistent/b.sock", "--to", "bravo", "--n", "10", "--size", "24"},
	}
	for _, args := range tests {
		t.Run(args[0], func(t *testing.T) {
			_, _, sock, err := run(t, "hello", args...)
			if !errors.Is(err, client.ErrUnreachable) {
				t.Fatalf("Run(%q) error = %v, want an unreachable-daemon error", args, err)
			}
			if msg := err.Error(); !strings.Contains(msg, sock) || !strings.Contains(msg, "is hotlined running? set --socket or $HOTLINE_SOCKET") {
				t.Errorf("Run(%q) error = %q, want it to name socket %s and hint", args, err, sock)
			}
			if ExitCode(err) != 1 {
				t.Errorf("ExitCode = %d, want 1", ExitCode(err))
			}
		})
	}
}

func TestSendEmptyPayload(t *testing.T) {
	_, _, _, err := run(t, "", "send", "--to", "alpha")
	if err == nil || !strings.Contains(err.Error(), "stdin was empty") {
		t.Fatalf("error = %v, want stdin was empty", err)
	}
	_, _, _, err = run(t, "", "send", "--to", "alpha", filepath.Join(t.TempDir(), "missing.txt"))
	if err == nil || !strings.Contains(err.Error(), "missing.txt") || errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("error = %v, want the missing file named", err)
	}
}

func TestSocketResolution(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "env.sock")
	t.Setenv(EnvSocket, sock)
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"status"}, nil, &out, &errb)
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("with $%s: error = %v, want unreachable %s", EnvSocket, err, sock)
	}
	flagSock := filepath.Join(t.TempDir(), "flag.sock")
	err = Run(context.Background(), []string{"status", "--socket", flagSock}, nil, &out, &errb)
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), flagSock) {
		t.Fatalf("with --socket: error = %v, want unreachable %s", err, flagSock)
	}
	t.Setenv(EnvSocket, "")
	err = Run(context.Background(), []string{"status"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), DefaultSocket) {
		t.Fatalf("default: error = %v, want it to name %s", err, DefaultSocket)
	}
}

func TestHelpSucceeds(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"send", "--help"}, {"help", "bench"}, {"pki", "issue", "-h"}} {
		out, _, _, err := run(t, "", args...)
		if err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("Run(%q) = %v, output %q; want usage text and no error", args, err, out)
		}
	}
}

func TestCheckReached(t *testing.T) {
	tests := []struct {
		state, wait, want string
	}{
		{"queued", "queued", ""},
		{"delivered", "queued", ""},
		{"queued", "delivered", "message m1 is still queued after 30s (it is stored: do not send it again)"},
		{"delivered", "read", "message m1 is still delivered after 30s (it is stored: do not send it again)"},
		{"read", "delivered", ""},
		{"read", "read", ""},
		{"expired", "delivered", "message m1 expired before it was delivered"},
		{"expired", "queued", ""},
	}
	// The daemon's wait timed out (202): not reached, whatever the state says.
	if err := checkReached(&client.Message{ID: "m1", State: "queued", WaitTimedOut: true}, "queued", 30e9); ExitCode(err) != 3 {
		t.Errorf("wait_timed_out: %v (exit code %d), want exit code 3", err, ExitCode(err))
	}
	for _, tt := range tests {
		err := checkReached(&client.Message{ID: "m1", State: tt.state}, tt.wait, 30e9)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("checkReached(state %s, wait %s) = %q, want %q", tt.state, tt.wait, got, tt.want)
		}
		if code := ExitCode(err); (tt.want == "") != (code == 0) || (tt.want != "" && code != 3) {
			t.Errorf("checkReached(state %s, wait %s): exit code %d, want %d", tt.state, tt.wait, code, map[bool]int{true: 0, false: 3}[tt.want == ""])
		}
	}
}

// wantUsageError runs args and checks that they fail as a usage error
// (exit code 2) containing want, before any request is made.
func wantUsageError(t *testing.T, stdin string, args []string, want string) {
	t.Helper()
	_, _, _, err := run(t, stdin, args...)
	if err == nil {
		t.Fatalf("Run(%q) succeeded, want usage error containing %q", args, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Run(%q) error = %q, want it to contain %q", args, err, want)
	}
	if !errors.Is(err, ErrUsage) || ExitCode(err) != 2 {
		t.Errorf("Run(%q) error %q is not a usage error (exit code %d)", args, err, ExitCode(err))
	}
	if errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Run(%q) made a request: %v", args, err)
	}
}
