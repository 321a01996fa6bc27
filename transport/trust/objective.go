package trust

import (
	"fmt"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// BundleObjective is the read objective of a bundle's message as the
// site that wrote the bundle states it (its mailbox's objective for the
// precedence): ReadWithin (a Go duration), Due (Unix ns: the signed
// submitted_at plus ReadWithin) and, once the message was read, Met
// (read_at at or before Due). It is not signed: VerifyBundle checks that
// it agrees with the signed times it derives from (submitted_at, and the
// read receipt's read_at when the bundle proves one) and reports it as a
// note, never as a proof.
type BundleObjective struct {
	Precedence queue.Precedence `json:"precedence"`
	ReadWithin string           `json:"read_within"`
	Due        int64            `json:"due"`
	Met        *bool            `json:"met,omitempty"`
}

// NewObjective is the objective of message m, to be read within within;
// readAt (Unix ns, 0: not read) decides Met.
func NewObjective(m *queue.Message, within time.Duration, readAt int64) *BundleObjective {
	o := &BundleObjective{Precedence: m.Precedence, ReadWithin: within.String(), Due: m.SubmittedAt + int64(within)}
	if readAt != 0 {
		met := readAt <= o.Due
		o.Met = &met
	}
	return o
}

// checkObjective checks b.Objective against the message and, if one of
// the bundle's read proofs verified (readAt, proven), the receipt's time.
func (b *Bundle) checkObjective(readAt int64, proven bool) Check {
	o := b.Objective
	c := Check{What: "objective", Note: true}
	within, err := time.ParseDuration(o.ReadWithin)
	stamp := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	switch {
	case o.Precedence != b.Message.Precedence:
		c.Err = fmt.Errorf("%w: objective of precedence %s, the message is %s", ErrMalformed, o.Precedence, b.Message.Precedence)
	case err != nil || within <= 0:
		c.Err = fmt.Errorf("%w: objective read_within %q is not a positive Go duration", ErrMalformed, o.ReadWithin)
	case o.Due != b.Message.SubmittedAt+int64(within):
		c.Err = fmt.Errorf("%w: objective due %s is not submitted_at plus %s", ErrMalformed, stamp(o.Due), within)
	case proven && o.Met != nil && *o.Met != (readAt <= o.Due):
		c.Err = fmt.Errorf("%w: objective met %v, but the signed read receipt says read at %s, due %s", ErrMalformed, *o.Met, stamp(readAt), stamp(o.Due))
	}
	if c.Err != nil {
		c.Note = false
		return c
	}
	c.Detail = fmt.Sprintf("%s, read within %s: due %s", o.Precedence, within, stamp(o.Due))
	switch {
	case o.Met == nil:
		c.Detail += ", not read yet"
	case proven && *o.Met:
		c.Detail += fmt.Sprintf(", met (read %s, by the signed read receipt)", stamp(readAt))
	case proven:
		c.Detail += fmt.Sprintf(", missed (read %s, by the signed read receipt)", stamp(readAt))
	case *o.Met:
		c.Detail += ", met as the site states (no signed read receipt here)"
	default:
		c.Detail += ", missed as the site states (no signed read receipt here)"
	}
	c.Detail += "; the objective is the site's statement, not signed"
	return c
}
