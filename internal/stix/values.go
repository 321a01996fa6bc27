package stix

import (
	"strconv"
	"strings"
)

// This file checks the syntax of single values: type names, identifiers,
// timestamps, language tags, hex and base64. Each check returns "" or a
// problem to report.

// show quotes a value for an error message, cut to a readable length.
func show(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xc0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// typeNameProblem checks a STIX type name (§3.1, §7.3.2): 3 to 250 ASCII
// characters of a-z, 0-9 and hyphen, beginning with a letter, not ending
// with a hyphen, with no two hyphens in a row (they would make the
// identifier ambiguous).
func typeNameProblem(t string) string {
	if len(t) < 3 || len(t) > 250 {
		return "type name " + show(t) + " must be 3 to 250 characters long"
	}
	if t[0] < 'a' || t[0] > 'z' {
		return "type name " + show(t) + " must begin with a letter a-z"
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "type name " + show(t) + " may hold only a-z, 0-9 and -"
		}
	}
	if strings.Contains(t, "--") || t[len(t)-1] == '-' {
		return "type name " + show(t) + " must not contain \"--\" nor end with \"-\""
	}
	return ""
}

// uuidProblem checks an RFC 4122 (RFC 9562) UUID in its 8-4-4-4-12 hex
// form: the variant must be 1 (10xx) and the version 1 to 8. STIX asks
// UUIDv4 for SDOs and SROs and UUIDv5 for SCOs only as SHOULD, so any
// version is accepted.
func uuidProblem(u string) string {
	if len(u) != 36 {
		return "is not a UUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if u[i] != '-' {
				return "is not a UUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
			}
		default:
			if !isHex(u[i]) {
				return "is not a UUID of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
			}
		}
	}
	if v := u[14]; v < '1' || v > '8' {
		return "is not an RFC 4122 UUID (version digit " + string(v) + ")"
	}
	switch u[19] {
	case '8', '9', 'a', 'b', 'A', 'B':
	default:
		return "is not an RFC 4122 UUID (variant digit " + string(u[19]) + ")"
	}
	return ""
}

// identifierProblem checks an identifier `object-type--UUID` (§2.9) and
// returns its type.
func identifierProblem(s string) (typ, problem string) {
	i := strings.Index(s, "--")
	if i < 0 {
		return "", "must be an identifier <type>--<UUID>, got " + show(s)
	}
	typ = s[:i]
	if p := typeNameProblem(typ); p != "" {
		return "", "must be an identifier <type>--<UUID>, got " + show(s) + ": " + p
	}
	if p := uuidProblem(s[i+2:]); p != "" {
		return "", "must be an identifier <type>--<UUID>, got " + show(s) + ": the part after \"--\" " + p
	}
	return typ, ""
}

// timestamp is a STIX timestamp split for comparison: the seconds
// (YYYY-MM-DDTHH:MM:SS, fixed width, so it sorts as text) and the digits of
// the fraction, if any.
type timestamp struct {
	sec, frac string
}

// compare returns -1, 0 or +1 as a is before, equal to or after b.
func (a timestamp) compare(b timestamp) int {
	if c := strings.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	fa, fb := a.frac, b.frac
	for len(fa) < len(fb) {
		fa += "0"
	}
	for len(fb) < len(fa) {
		fb += "0"
	}
	return strings.Compare(fa, fb)
}

const timestampForm = "YYYY-MM-DDTHH:MM:SS[.s+]Z"

// parseTimestamp checks a STIX timestamp (§2.16): RFC 3339 in UTC, written
// YYYY-MM-DDTHH:MM:SS[.s+]Z, with a valid calendar date and time of day.
func parseTimestamp(s string) (timestamp, string) {
	if ts, ok := scanTimestamp(s); ok {
		if !validDateTime(ts.sec) {
			return timestamp{}, "is not a valid date and time: " + show(s)
		}
		return ts, ""
	}
	return timestamp{}, "must be a timestamp " + timestampForm + " (RFC 3339, UTC), got " + show(s)
}

// scanTimestamp checks the form YYYY-MM-DDTHH:MM:SS[.s+]Z.
func scanTimestamp(s string) (timestamp, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' {
		return timestamp{}, false
	}
	for i := 0; i < 19; i++ {
		c := s[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return timestamp{}, false
			}
		case 10:
			if c != 'T' {
				return timestamp{}, false
			}
		case 13, 16:
			if c != ':' {
				return timestamp{}, false
			}
		default:
			if c < '0' || c > '9' {
				return timestamp{}, false
			}
		}
	}
	ts := timestamp{sec: s[:19]}
	if rest := s[19 : len(s)-1]; rest != "" {
		if rest[0] != '.' || len(rest) == 1 {
			return timestamp{}, false
		}
		for i := 1; i < len(rest); i++ {
			if rest[i] < '0' || rest[i] > '9' {
				return timestamp{}, false
			}
		}
		ts.frac = rest[1:]
	}
	return ts, true
}

// validDateTime checks the fields of YYYY-MM-DDTHH:MM:SS (digits already
// checked): a month, a day of that month (leap years Gregorian), an hour,
// a minute and a second (no leap second).
func validDateTime(s string) bool {
	num := func(i, n int) int {
		v := 0
		for _, c := range s[i : i+n] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days && num(11, 2) < 24 && num(14, 2) < 60 && num(17, 2) < 60
}

// langProblem checks the shape of an RFC 5646 language tag: subtags of 1
// to 8 letters or digits joined by hyphens, the first of letters only
// ("en", "de-CH", "zh-Hant-TW", "x-klingon"). It does not look subtags up
// in the IANA registry.
func langProblem(s string) string {
	if !isLangTag(s) {
		return "must be an RFC 5646 language tag, got " + show(s)
	}
	return ""
}

func isLangTag(s string) bool {
	if s == "" {
		return false
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 {
			return false
		}
		for j := 0; j < len(sub); j++ {
			c := sub[j] | 0x20 // ASCII lower case; only A-Z land on a-z
			letter := c >= 'a' && c <= 'z'
			if !(letter || i > 0 && sub[j] >= '0' && sub[j] <= '9') {
				return false
			}
		}
	}
	return true
}

// hexProblem checks the hex type (§2.8): an even number of 0-9 and a-f.
func hexProblem(s string) string {
	if len(s)%2 != 0 {
		return "must be hex of an even number of digits, got " + show(s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "must be hex of 0-9 and a-f, got " + show(s)
		}
	}
	return ""
}

// base64Problem checks the binary type (§2.1): base64 (RFC 4648 §4) with
// padding and no line breaks.
func base64Problem(s string) string {
	if !isBase64(s) {
		return "must be base64 (RFC 4648), got " + show(s)
	}
	return ""
}

func isBase64(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		case c == '=' && (i == len(s)-1 || i == len(s)-2 && s[len(s)-1] == '='):
		default:
			return false
		}
	}
	return true
}

// propertyNameProblem checks the name of a top-level property (§3.1,
// §11.1): 3 to 250 characters of a-z, 0-9 and underscore, beginning with
// a letter. ("id", the one shorter name the specification defines, is
// checked before this.)
func propertyNameProblem(k string) string {
	if len(k) < 3 || len(k) > 250 || k[0] < 'a' || k[0] > 'z' {
		return "property name must be 3 to 250 characters of a-z, 0-9 and _, beginning with a letter"
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "property name must be 3 to 250 characters of a-z, 0-9 and _, beginning with a letter"
		}
	}
	return ""
}

// dictKeyProblem checks a key of a dictionary or hashes (§2.3, §2.7):
// ASCII letters, digits, hyphen and underscore, at most 250 characters
// (and at least min).
func dictKeyProblem(k string, min int) string {
	if len(k) < min || len(k) > 250 {
		return "key " + show(k) + " must be " + strconv.Itoa(min) + " to 250 characters long"
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "key " + show(k) + " may hold only a-z, A-Z, 0-9, - and _"
		}
	}
	return ""
}

// hashLengths are the hex lengths of the hash-algorithm-ov algorithms
// whose values are plain hex digests.
var hashLengths = map[string]int{
	"MD5": 32, "SHA-1": 40, "SHA-256": 64, "SHA-512": 128,
	"SHA3-256": 64, "SHA3-512": 128,
}

// integerProblem checks that number text is an integer within [min, max]
// and within STIX's 54-bit range (§2.10).
func integerProblem(raw string, min, max int64) string {
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return "must be an integer, got " + raw
	}
	const limit = 1<<53 - 1
	if n < -limit || n > limit {
		return "integer " + raw + " is outside STIX's range ±(2^53-1)"
	}
	if n < min || n > max {
		return "must be between " + strconv.FormatInt(min, 10) + " and " + strconv.FormatInt(max, 10) + ", got " + raw
	}
	return ""
}

// floatProblem checks that number text is within [min, max].
func floatProblem(raw string, min, max float64) string {
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return "must be a finite number, got " + show(raw)
	}
	if f < min || f > max {
		return "must be between " + strconv.FormatFloat(min, 'g', -1, 64) + " and " + strconv.FormatFloat(max, 'g', -1, 64) + ", got " + raw
	}
	return ""
}
