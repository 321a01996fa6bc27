package ctl

import (
	"encoding/json"
	"io"
	"time"
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
