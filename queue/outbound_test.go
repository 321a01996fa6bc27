package queue

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSubmitAssignsGapFreeSequencesPerChannel(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	res := l.apply(t, s, submitCmd(t1,
		item("a1", "bravo", Routine, "r1"),
		item("a2", "bravo", Flash, "f1"),
		item("a3", "bravo", Routine, "r2"),
		item("a4", "charlie", Routine, "c1"),
	))
	want := []SubmitResult{{ID: "a1", Seq: 1}, {ID: "a2", Seq: 1}, {ID: "a3", Seq: 2}, {ID: "a4", Seq: 1}}
	if !reflect.DeepEqual(res[0].Submit, want) {
		t.Fatalf("submit results = %+v, want %+v", res[0].Submit, want)
	}
	res = l.apply(t, s, submitCmd(t2, item("a5", "bravo", Routine, "r3")))
	if got := res[0].Submit[0].Seq; got != 3 {
		t.Fatalf("next routine seq = %d, want 3", got)
	}

	wantOut := []OutChannel{
		{Dest: "bravo", Precedence: Flash, Last: 1, OldestQueuedAt: t1},
		{Dest: "bravo", Precedence: Routine, Last: 3, OldestQueuedAt: t1},
		{Dest: "charlie", Precedence: Routine, Last: 1, OldestQueuedAt: t1},
	}
	if got := s.Outbound(); !reflect.DeepEqual(got, wantOut) {
		t.Fatalf("Outbound = %+v, want %+v", got, wantOut)
	}
	st := mustStatus(t, s, "a5")
	wantMsg := Message{ID: "a5", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 3, Payload: []byte("r3"), SubmittedAt: t2}
	if st.Direction != Outbound || st.State != Queued || st.SubmittedAt != t2 || !reflect.DeepEqual(st.Message, wantMsg) {
		t.Fatalf("status = %+v", st)
	}
	if _, err := s.Lookup("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup unknown: %v, want ErrNotFound", err)
	}
}

func TestSubmitValidation(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want string // substring of the item's Err
	}{
		{"empty id", submitCmd(t1, item("", "bravo", Routine, "x")), "empty message id"},
		{"long id", submitCmd(t1, item(strings.Repeat("i", MaxIDLen+1), "bravo", Routine, "x")), "message id longer"},
		{"empty dest", submitCmd(t1, item("a", "", Routine, "x")), "empty site name"},
		{"nul in dest", submitCmd(t1, item("a", "br\x00avo", Routine, "x")), "0 byte"},
		{"long key", submitCmd(t1, SubmitItem{ID: "a", Dest: "bravo", Key: strings.Repeat("k", MaxKeyLen+1)}), "key longer"},
		{"tombstone flag", submitCmd(t1, SubmitItem{ID: "a", Dest: "bravo", Flags: FlagTombstone}), "tombstone"},
		{"foreign origin", Command{Op: OpSubmit, Time: t1, Submit: &Submit{Origin: "charlie", Items: []SubmitItem{item("a", "bravo", Routine, "x")}}}, "not the local site"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, "alpha")
			var l cmdLog
			res := s.Apply(l.add(t, tc.cmd))
			if len(res[0].Submit) != 1 || !strings.Contains(res[0].Submit[0].Err, tc.want) {
				t.Fatalf("result = %+v, want item error containing %q", res[0], tc.want)
			}
			if out := s.Outbound(); len(out) != 0 {
				t.Fatalf("something was stored: %+v", out)
			}
			if s.AppliedIndex() != 1 {
				t.Fatalf("applied index = %d, want 1", s.AppliedIndex())
			}
		})
	}
}

func TestSubmitItemValidate(t *testing.T) {
	// An invalid precedence cannot even be encoded into a command; the
	// state machine still checks it, and so can a proposer.
	it := item("a", "bravo", Precedence(9), "x")
	if err := it.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "precedence 9") {
		t.Fatalf("Validate = %v", err)
	}
	it = item("a", "bravo", Flash, "x")
	if err := it.Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
}

func TestSubmitBadItemDoesNotStopOthers(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	res := s.Apply(l.add(t, submitCmd(t1, item("a1", "bravo", Routine, "x"), item("", "bravo", Routine, "y"), item("a3", "bravo", Routine, "z"))))
	got := res[0].Submit
	if got[0].Seq != 1 || got[1].Err == "" || got[2].Seq != 2 {
		t.Fatalf("results = %+v", got)
	}
}

func TestSubmitIdempotency(t *testing.T) {
	keyed := func(id, key, dest string, p Precedence, payload string) SubmitItem {
		it := item(id, dest, p, payload)
		it.Key = key
		return it
	}
	tests := []struct {
		name  string
		retry SubmitItem
		want  SubmitResult
	}{
		{"same id retried", item("m1", "bravo", Routine, "other payload"), SubmitResult{ID: "m1", Seq: 1, Existing: true}},
		{"same key same message", keyed("m2", "k1", "bravo", Routine, "hello"), SubmitResult{ID: "m1", Seq: 1, Existing: true}},
		{"same key other payload", keyed("m2", "k1", "bravo", Routine, "bye"), SubmitResult{ID: "m2", Err: ErrKeyConflict.Error()}},
		{"same key other dest", keyed("m2", "k1", "charlie", Routine, "hello"), SubmitResult{ID: "m2", Err: ErrKeyConflict.Error()}},
		{"same key other precedence", keyed("m2", "k1", "bravo", Flash, "hello"), SubmitResult{ID: "m2", Err: ErrKeyConflict.Error()}},
		{"other key", keyed("m2", "k2", "bravo", Routine, "hello"), SubmitResult{ID: "m2", Seq: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, "alpha")
			var l cmdLog
			l.apply(t, s, submitCmd(t1, keyed("m1", "k1", "bravo", Routine, "hello")))
			res := s.Apply(l.add(t, submitCmd(t2, tc.retry)))
			if got := res[0].Submit[0]; got != tc.want {
				t.Fatalf("retry = %+v, want %+v", got, tc.want)
			}
			wantLast := uint64(1)
			if tc.want.Seq == 2 {
				wantLast = 2
			}
			var last uint64
			for _, oc := range s.Outbound() {
				last += oc.Last
			}
			if last != wantLast {
				t.Fatalf("messages stored = %d, want %d", last, wantLast)
			}
			st, err := s.LookupKey("k1")
			if err != nil || st.Message.ID != "m1" || string(st.Message.Payload) != "hello" {
				t.Fatalf("LookupKey = %+v, %v", st, err)
			}
		})
	}
}

func TestSubmitDuplicateIDInOneCommand(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	res := l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "a"), item("m1", "bravo", Routine, "a")))
	want := []SubmitResult{{ID: "m1", Seq: 1}, {ID: "m1", Seq: 1, Existing: true}}
	if !reflect.DeepEqual(res[0].Submit, want) {
		t.Fatalf("results = %+v", res[0].Submit)
	}
	if _, err := s.LookupKey("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupKey of an ID: %v", err)
	}
}

func TestDeliveredAdvancesCumulatively(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	var items []SubmitItem
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		items = append(items, item(id, "bravo", Priority, id))
	}
	l.apply(t, s, submitCmd(t1, items...))
	l.apply(t, s, submitCmd(t2, item("m6", "bravo", Priority, "m6")))

	steps := []struct {
		now       int64
		upTo      uint64
		wantAcked uint64
		oldest    int64
	}{
		{t2, 3, 3, t1},
		{t3, 2, 3, t1}, // lower ack: no-op
		{t3, 3, 3, t1}, // same ack: no-op
		{t3, 5, 5, t2},
		{t4, 100, 6, 0}, // beyond last: clamped
	}
	for i, st := range steps {
		l.apply(t, s, deliveredCmd(st.now, "bravo", Priority, st.upTo))
		oc := s.Outbound()[0]
		if oc.Acked != st.wantAcked || oc.Last != 6 || oc.OldestQueuedAt != st.oldest {
			t.Fatalf("step %d: channel = %+v, want acked %d oldest %d", i, oc, st.wantAcked, st.oldest)
		}
	}
	wantAt := map[string]int64{"m1": t2, "m2": t2, "m3": t2, "m4": t3, "m5": t3, "m6": t4}
	for id, at := range wantAt {
		st := mustStatus(t, s, id)
		if st.State != Delivered || st.DeliveredAt != at {
			t.Errorf("%s: state %s delivered at %d, want delivered at %d", id, st.State, st.DeliveredAt, at)
		}
	}
	// Unknown channel: no-op, no channel created.
	l.apply(t, s, deliveredCmd(t4, "zulu", Flash, 10))
	if n := len(s.Outbound()); n != 1 {
		t.Fatalf("channels = %d, want 1", n)
	}
}

func TestPendingLimits(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1,
		item("m1", "bravo", Immediate, "aaaa"),
		item("m2", "bravo", Immediate, "bbbb"),
		item("m3", "bravo", Immediate, "cccc"),
		item("m4", "bravo", Immediate, "dddd"),
		item("x1", "bravo", Routine, "routine"),
	))
	tests := []struct {
		after             uint64
		maxMsgs, maxBytes int
		want              []uint64
	}{
		{0, 0, 0, []uint64{1, 2, 3, 4}},
		{0, 2, 0, []uint64{1, 2}},
		{1, 0, 0, []uint64{2, 3, 4}},
		{0, 0, 8, []uint64{1, 2}},
		{0, 0, 9, []uint64{1, 2}},
		{2, 0, 1, []uint64{3}}, // the first is returned even over the byte limit
		{4, 0, 0, nil},
		{99, 10, 10, nil},
	}
	for _, tc := range tests {
		msgs, err := s.Pending("bravo", Immediate, tc.after, tc.maxMsgs, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(msgs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Pending(after %d, %d msgs, %d bytes) = %v, want %v", tc.after, tc.maxMsgs, tc.maxBytes, got, tc.want)
		}
	}
	msgs, _ := s.Pending("bravo", Immediate, 0, 1, 0)
	want := Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: Immediate, Seq: 1, Payload: []byte("aaaa"), SubmittedAt: t1}
	if !reflect.DeepEqual(msgs[0], want) {
		t.Fatalf("message = %+v, want %+v", msgs[0], want)
	}
	if msgs, _ := s.Pending("nobody", Flash, 0, 0, 0); len(msgs) != 0 {
		t.Fatalf("unknown channel: %v", msgs)
	}
}

func TestExpiryLeavesTombstones(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	exp := func(id string, at int64) SubmitItem {
		it := item(id, "bravo", Routine, "payload-"+id)
		it.ExpiresAt = at
		return it
	}
	keyed := exp("m5", t3)
	keyed.Key = "k5"
	l.apply(t, s, submitCmd(t1, exp("m1", t2), exp("m2", t4), exp("m3", 0), exp("m4", t2), keyed))
	l.apply(t, s, deliveredCmd(t1, "bravo", Routine, 1)) // m1 delivered before it expires

	res := l.apply(t, s, expireCmd(t2))
	if got := res[0].Expire.Expired; got != 1 {
		t.Fatalf("expired at t2 = %d, want 1 (m4)", got)
	}
	res = l.apply(t, s, expireCmd(t3))
	if got := res[0].Expire.Expired; got != 1 {
		t.Fatalf("expired at t3 = %d, want 1 (m5)", got)
	}
	res = l.apply(t, s, expireCmd(t3))
	if got := res[0].Expire.Expired; got != 0 {
		t.Fatalf("expired again = %d, want 0", got)
	}

	msgs, err := s.Pending("bravo", Routine, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantPayload := []string{"payload-m1", "payload-m2", "payload-m3", "", ""}
	if got := payloads(msgs); !reflect.DeepEqual(got, wantPayload) {
		t.Fatalf("payloads = %q, want %q", got, wantPayload)
	}
	for i, m := range msgs {
		if m.Tombstone() != (i >= 3) || m.Payload != nil && m.Tombstone() {
			t.Errorf("message %d: flags %b payload %q", m.Seq, m.Flags, m.Payload)
		}
	}
	st := mustStatus(t, s, "m4")
	if st.State != Expired || st.ExpiredAt != t2 || st.Message.Payload != nil {
		t.Fatalf("m4 = %+v", st)
	}
	if st := mustStatus(t, s, "m1"); st.State != Delivered || st.ExpiredAt != 0 {
		t.Fatalf("m1 = %+v", st)
	}
	// The key still answers after expiry: a retry does not enqueue again.
	retry := exp("m9", t3)
	retry.Key, retry.Payload = "k5", []byte("payload-m5")
	res = l.apply(t, s, submitCmd(t4, retry))
	if got := res[0].Submit[0]; got != (SubmitResult{ID: "m5", Seq: 5, Existing: true}) {
		t.Fatalf("retry after expiry = %+v", got)
	}
	// A later ack does not resurrect tombstones.
	l.apply(t, s, deliveredCmd(t4, "bravo", Routine, 5))
	if st := mustStatus(t, s, "m4"); st.State != Expired || st.DeliveredAt != 0 {
		t.Fatalf("m4 after ack = %+v", st)
	}
	if st := mustStatus(t, s, "m2"); st.State != Delivered {
		t.Fatalf("m2 after ack = %+v", st)
	}
	// m2 was delivered, so expiring at its time does nothing.
	res = l.apply(t, s, expireCmd(t4+1))
	if got := res[0].Expire.Expired; got != 0 {
		t.Fatalf("expired after delivery = %d, want 0", got)
	}
	if n := countKeys(t, s, bucketExpiry); n != 0 {
		t.Fatalf("expiry index has %d entries, want 0", n)
	}
}
