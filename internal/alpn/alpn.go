package alpn

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NoApplicationProtocol is the TLS alert a server sends when the client
// offers none of its protocols.
const NoApplicationProtocol = tls.AlertError(120)

// Common returns the first of ours that offered holds: the protocol
// crypto/tls's server negotiates. ok is false when there is none.
func Common(ours, offered []string) (proto string, ok bool) {
	for _, p := range ours {
		for _, o := range offered {
			if p == o {
				return p, true
			}
		}
	}
	return "", false
}

// Version returns N of a protocol name "PREFIXN" (prefix "hotline-raft/",
// name "hotline-raft/2": 2). ok is false for another prefix or a suffix that
// is not a decimal number from 1.
func Version(proto, prefix string) (n int, ok bool) {
	s, found := strings.CutPrefix(proto, prefix)
	if !found || s == "" || s[0] == '0' || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// Bounds of List: a client's offer is its own to choose (up to 64 KiB of
// handshake), so what it says is cut before it reaches a log line or an
// alarm.
const (
	listMax = 8  // entries shown
	nameMax = 40 // bytes of one entry shown
)

// List words protocols for a log line or an alarm: "hotline/9, hotline/1",
// at most 8 names of at most 40 bytes each ("... (N more)"), a name that is
// not printable UTF-8 or holds a space or a comma quoted, and "none" for an
// empty list.
func List(protos []string) string {
	if len(protos) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, p := range protos {
		if i == listMax {
			b.WriteString(", ... (" + strconv.Itoa(len(protos)-listMax) + " more)")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		cut := ""
		if len(p) > nameMax {
			p, cut = p[:nameMax], "..."
		}
		if plain(p) {
			b.WriteString(p)
		} else {
			b.WriteString(strconv.QuoteToASCII(p))
		}
		b.WriteString(cut)
	}
	return b.String()
}

// plain reports whether s can be shown as it is.
func plain(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == ',' || r == '"' || r == 0x7f || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// Refused reports whether err is a TLS client handshake (over TCP) that
// the server refused because it speaks none of the protocols offered: a
// remote no_application_protocol alert. (quic-go reports the same refusal
// as a remote transport error 0x178; transport checks that.)
func Refused(err error) bool {
	var oe *net.OpError
	// crypto/tls reports a received alert as a *net.OpError "remote
	// error" around its unexported alert type, whose text is the one
	// AlertError has.
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		oe.Err.Error() == NoApplicationProtocol.Error()
}
