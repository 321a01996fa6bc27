package trust

import (
	"errors"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

// TestBundleHeldMessageRecords: a message held for two-person release
// has its submitted record before it had a sequence number (seq 0); that
// record is about the message, no other kind with seq 0 is, and the
// report names who asked for each record.
func TestBundleHeldMessageRecords(t *testing.T) {
	b := newLabEvidence(t).bundle(t)
	m := &b.Message
	rec := func(kind queue.AuditKind, seq uint64, by queue.Actor) *queue.AuditRecord {
		r := &queue.AuditRecord{Kind: kind, Time: 1, ID: m.ID, Origin: m.Origin, Dest: m.Dest, Precedence: m.Precedence, Seq: seq, Actor: by}
		if kind == queue.AuditSubmitted {
			r.PayloadHash = m.PayloadSHA256[:]
		}
		return r
	}
	alice := queue.Actor{UID: 1001, User: "alice", PID: 7}
	for _, tc := range []struct {
		r    *queue.AuditRecord
		ok   bool
		whom string
	}{
		{rec(queue.AuditSubmitted, 0, alice), true, " by user alice (uid 1001)"},
		{rec(queue.AuditReleased, m.Seq, queue.Actor{UID: 1002, PID: 8}), true, " by uid 1002"},
		{rec(queue.AuditReleased, 0, alice), false, ""},
		{rec(queue.AuditDelivered, 0, queue.NoActor), false, ""},
		{rec(queue.AuditSubmitted, m.Seq+1, alice), false, ""},
		{rec(queue.AuditRead, m.Seq, queue.Actor{UID: -1, PID: -1, Peer: "bravo/bravo-1"}), true, " by node bravo/bravo-1"},
		{rec(queue.AuditDelivered, m.Seq, queue.NoActor), true, ""},
	} {
		err := b.aboutMessage(tc.r.Encode())
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrMismatch) {
			t.Errorf("%s record, seq %d: %v", tc.r.Kind, tc.r.Seq, err)
		}
		if tc.ok && byWhom(tc.r) != tc.whom {
			t.Errorf("%s record: byWhom = %q, want %q", tc.r.Kind, byWhom(tc.r), tc.whom)
		}
	}
}
