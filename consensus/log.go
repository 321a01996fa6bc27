package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// raftInfoKept lists the Raft Info messages that stay at slog Info: rare
// events an operator wants to see. Raft's other Info messages (state
// entries, replication starts, snapshot steps) become Debug; this package
// logs leadership changes itself at Info.
var raftInfoKept = []string{
	"initial configuration",
	"updating configuration",
	"Installed remote snapshot",
	"restored user snapshot",
	"removed ourself",
}

// repeatWindow is how often one Raft warning or error about one peer is
// logged: with a peer down, Raft reports the failed heartbeat several times
// a second.
const repeatWindow = 30 * time.Second

// hclogAdapter is an hclog.Logger writing to a slog.Logger, so Raft logs
// through the caller's structured logger. Trace becomes slog Debug-4, Debug
// stays Debug, Info mostly becomes Debug (see raftInfoKept), Warn and Error
// stay but repeat at most once per repeatWindow per message and peer, with
// a count of the repeats left out.
type hclogAdapter struct {
	base    *slog.Logger // the caller's logger with the implied args
	l       *slog.Logger // base with the name
	name    string
	implied []any
	level   *atomic.Int32 // minimum hclog.Level, shared by derived loggers
	repeats *repeatLimiter
}

// repeatLimiter remembers when a message was last logged.
type repeatLimiter struct {
	mu   sync.Mutex
	seen map[string]*repeatState
}

type repeatState struct {
	last       time.Time
	suppressed int
}

// allow reports whether the message with key may be logged now, and how
// many repeats were left out since it last was.
func (r *repeatLimiter) allow(key string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.seen[key]
	if st != nil && now.Sub(st.last) < repeatWindow {
		st.suppressed++
		return false, 0
	}
	suppressed := 0
	if st != nil {
		suppressed = st.suppressed
	}
	if len(r.seen) >= 1024 {
		clear(r.seen)
	}
	r.seen[key] = &repeatState{last: now}
	return true, suppressed
}

// formatArgs renders hclog.Fmt values, which slog would print as a slice.
func formatArgs(args []any) []any {
	out := args
	for i := 1; i < len(args); i += 2 {
		f, ok := args[i].(hclog.Format)
		if !ok || len(f) == 0 {
			continue
		}
		if &out[0] == &args[0] {
			out = append([]any(nil), args...)
		}
		if format, ok := f[0].(string); ok {
			out[i] = fmt.Sprintf(format, f[1:]...)
		} else {
			out[i] = fmt.Sprint(f...)
		}
	}
	return out
}

// carries reports whether one of a log call's values is the error target.
func carries(args []any, target error) bool {
	for _, v := range args {
		if err, ok := v.(error); ok && errors.Is(err, target) {
			return true
		}
	}
	return false
}

// repeatKey identifies a message and the peer it is about.
func repeatKey(msg string, args []any) string {
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "peer", "target", "server-id", "id", "address":
			return msg + "\x00" + fmt.Sprint(args[i+1])
		}
	}
	return msg
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHclog returns an hclog.Logger named name over l.
func newHclog(l *slog.Logger, name string) *hclogAdapter {
	lv := new(atomic.Int32)
	lv.Store(int32(hclog.Trace))
	return &hclogAdapter{base: l, l: l.With("logger", name), name: name, level: lv,
		repeats: &repeatLimiter{seen: make(map[string]*repeatState)}}
}

func slogLevel(level hclog.Level, msg string) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel:
		for _, p := range raftInfoKept {
			if strings.HasPrefix(msg, p) {
				return slog.LevelInfo
			}
		}
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (a *hclogAdapter) enabled(level hclog.Level, sl slog.Level) bool {
	return level >= hclog.Level(a.level.Load()) && a.l.Enabled(context.Background(), sl)
}

// Log implements hclog.Logger.
func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	sl := slogLevel(level, msg)
	if level == hclog.Error && carries(args, errPipelineRejected) {
		// A follower rejecting an append is how Raft finds where its
		// log and the leader's agree; Raft reports the pipeline it ends
		// as a failure.
		level, sl = hclog.Debug, slog.LevelDebug
	}
	if !a.enabled(level, sl) {
		return
	}
	args = formatArgs(args)
	if level >= hclog.Warn {
		ok, suppressed := a.repeats.allow(repeatKey(msg, args), time.Now())
		if !ok {
			return
		}
		if suppressed > 0 {
			args = append(args[:len(args):len(args)], "suppressed_repeats", suppressed)
		}
	}
	a.l.Log(context.Background(), sl, msg, args...)
}

// Trace implements hclog.Logger.
func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (a *hclogAdapter) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (a *hclogAdapter) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

// IsTrace implements hclog.Logger.
func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace, slog.LevelDebug-4) }

// IsDebug implements hclog.Logger.
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug, slog.LevelDebug) }

// IsInfo implements hclog.Logger.
func (a *hclogAdapter) IsInfo() bool { return a.enabled(hclog.Info, slog.LevelInfo) }

// IsWarn implements hclog.Logger.
func (a *hclogAdapter) IsWarn() bool { return a.enabled(hclog.Warn, slog.LevelWarn) }

// IsError implements hclog.Logger.
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error, slog.LevelError) }

// ImpliedArgs implements hclog.Logger.
func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

// With implements hclog.Logger.
func (a *hclogAdapter) With(args ...any) hclog.Logger {
	b := *a
	b.base = a.base.With(args...)
	b.l = b.base.With("logger", b.name)
	b.implied = append(append([]any(nil), a.implied...), args...)
	return &b
}

// Name implements hclog.Logger.
func (a *hclogAdapter) Name() string { return a.name }

// Named implements hclog.Logger.
func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

// ResetNamed implements hclog.Logger.
func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	b.l = a.base.With("logger", name)
	return &b
}

// SetLevel implements hclog.Logger; it filters below the slog handler's own
// level.
func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }

// GetLevel implements hclog.Logger.
func (a *hclogAdapter) GetLevel() hclog.Level { return hclog.Level(a.level.Load()) }

// StandardLogger implements hclog.Logger.
func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter implements hclog.Logger: each write is one message at
// opts.ForceLevel, or Info.
func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return stdWriter{a: a, level: level}
}

type stdWriter struct {
	a     *hclogAdapter
	level hclog.Level
}

func (w stdWriter) Write(p []byte) (int, error) {
	w.a.Log(w.level, string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
