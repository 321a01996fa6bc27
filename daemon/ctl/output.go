package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// timeLayout is how human output shows instants: RFC 3339 with
// milliseconds, in the offset the daemon sent.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// fmtTime formats t for humans; "-" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(timeLayout)
}

// Text output shows strings that came from the daemon, and through it
// from peer sites (ids, keys, site names), so none may drive the terminal:
// a field that is not plainly printable is shown quoted with Go escapes.

// safe returns s as is when every rune is a printable non-space character
// other than '"' and '\', else strconv.Quote(s) ("" for the empty string).
func safe(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r == utf8.RuneError || !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' || r == '\\'
	}) {
		return s
	}
	return strconv.Quote(s)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// escapeText returns p with everything a terminal would act on escaped:
// control characters other than newline and tab, DEL, C1 and Unicode
// format characters (bidi overrides) as \xNN or \uNNNN, invalid UTF-8
// bytes as \xNN, and the backslash as \\ so the escapes are unambiguous.
func escapeText(p []byte) []byte {
	var out []byte
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		switch {
		case r == utf8.RuneError && n <= 1:
			out = fmt.Appendf(out, `\x%02x`, p[0])
		case r == '\\':
			out = append(out, `\\`...)
		case r == '\n' || r == '\t':
			out = append(out, byte(r))
		case r < 0x20 || r == 0x7f:
			out = fmt.Appendf(out, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[:n]...)
		}
		p = p[n:]
	}
	return out
}
