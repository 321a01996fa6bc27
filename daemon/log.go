package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
	}
	return l, nil
}

func parseMode(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode like \"0660\"", s)
	}
	return uint32(v), nil
}

// newLogger returns the structured logger a node writes to w.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	lv := new(slog.LevelVar)
	lv.Set(l)
	return newLevelLogger(w, lv, format)
}

// newLevelLogger returns a logger whose level can be changed while it is
// in use (reload of log_level).
func newLevelLogger(w io.Writer, lv *slog.LevelVar, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
