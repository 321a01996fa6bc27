package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// inBatch is an inbound batch of n messages alpha->bravo/routine from
// seq first, as the link delivers it.
func inBatch(first uint64, n int) *Receive {
	r := &Receive{Origin: "alpha", Precedence: Routine}
	for i := range n {
		seq := first + uint64(i)
		r.Messages = append(r.Messages, Message{ID: fmt.Sprintf("id-%d", seq), Origin: "alpha", Dest: "bravo",
			Precedence: Routine, Seq: seq, Key: fmt.Sprintf("key-%d", seq), Payload: []byte("payload")})
	}
	return r
}

// TestValidateInboundBatch: the one check of an inbound batch refuses
// ids and keys a terminal or log could misread, naming the message and
// the field; ids and keys longer than the state machine stores; gaps
// and oversize payloads; messages of another channel. Other Unicode
// passes.
func TestValidateInboundBatch(t *testing.T) {
	withID := func(id, key string) *Receive {
		r := inBatch(1, 2)
		r.Messages[1].ID, r.Messages[1].Key = id, key
		return r
	}
	cases := []struct {
		name string
		r    *Receive
		want []string // in the error
	}{
		{"ANSI escape in id", withID("a\x1b[31mred", ""), []string{"message 1 (seq 2)", "message id contains control character U+001B"}},
		{"CR LF in id", withID("a\r\nFAKE LOG LINE", ""), []string{"message 1 (seq 2)", "control character U+000D"}},
		{"invalid UTF-8 in id", withID("a\xff", ""), []string{"message 1 (seq 2)", "invalid UTF-8 at byte 1"}},
		{"NUL in key", withID("ok", "k\x00"), []string{"message 1 (seq 2)", "idempotency key contains control character U+0000"}},
		{"C1 control in key", withID("ok", "k\u009b"), []string{"message 1 (seq 2)", "control character U+009B"}},
		{"id too long", withID(strings.Repeat("i", MaxIDLen+1), ""), []string{"message 1 (seq 2)", "message id longer than 255 bytes (256)"}},
		{"key too long", withID("ok", strings.Repeat("k", MaxKeyLen+1)), []string{"message 1 (seq 2)", "idempotency key longer than 1024 bytes (1025)"}},
		{"empty id", withID("", ""), []string{"message 1 (seq 2)", "empty message id"}},
		{"gap", func() *Receive { r := inBatch(1, 3); r.Messages[2].Seq = 4; return r }(), []string{`message 2 (id "id-3") has sequence 4, want 3`}},
		{"seq zero", inBatch(0, 1), []string{"sequence 0"}},
		{"payload over the limit", func() *Receive { r := inBatch(1, 2); r.Messages[1].Payload = make([]byte, 101); return r }(), []string{`message 1 (id "id-2") is 101 bytes, over this site's limit of 100`}},
		{"another channel", func() *Receive { r := inBatch(1, 2); r.Messages[1].Dest = "charlie"; return r }(), []string{"message 1", "alpha->charlie/routine, not the batch's alpha->bravo/routine"}},
		{"another precedence", func() *Receive { r := inBatch(1, 1); r.Messages[0].Precedence = Flash; return r }(), []string{"not the batch's"}},
		{"notice flag", func() *Receive { r := inBatch(1, 2); r.Messages[1].Flags |= FlagNotice; return r }(), []string{`message 1 (id "id-2") from alpha is flagged as an expiry notice`}},
		{"notice flag on a tombstone", func() *Receive {
			r := inBatch(1, 1)
			r.Messages[0].Flags, r.Messages[0].Payload = FlagTombstone|FlagNotice, nil
			return r
		}(), []string{"expiry notice"}},
		{"bad origin", &Receive{Precedence: Routine}, []string{"origin", "empty site name"}},
		{"bad precedence", &Receive{Origin: "alpha", Precedence: 4}, []string{"precedence 4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Validate("bravo", 100)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want an error wrapping ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Validate = %v, want it to contain %q", err, w)
				}
			}
		})
	}
	ok := withID("café-✓-\uFFFD", "ключ")
	if err := ok.Validate("bravo", 100); err != nil {
		t.Fatalf("printable Unicode refused: %v", err)
	}
	if err := inBatch(7, 3).Validate("bravo", 0); err != nil {
		t.Fatalf("a good batch without a size limit: %v", err)
	}
	if err := (&Receive{Origin: "alpha", Precedence: Flash}).Validate("bravo", 1); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
}

// TestValidateApplyPartIsLenient: what Validate refuses only before
// proposing (gaps, sizes) still applies from a log, as before: applying
// stops at the gap.
func TestValidateApplyPartIsLenient(t *testing.T) {
	r := inBatch(1, 3)
	r.Messages[2].Seq = 5
	if err := r.Validate("bravo", 0); err == nil {
		t.Fatal("a batch with a gap passed Validate")
	}
	s, _ := openStore(t, "bravo")
	var l cmdLog
	res := l.apply(t, s, Command{Op: OpReceive, Time: t1, Receive: r})
	if got := res[0].Receive; got == nil || got.Last != 2 || got.Applied != 2 {
		t.Fatalf("applied %+v, want up to the gap", res[0])
	}
}

func TestValidateReceipts(t *testing.T) {
	batch := func(edit func([]Receipt)) *Receipts {
		rs := []Receipt{{RSeq: 4, Precedence: Flash, Seq: 1, ID: "m1"}, {RSeq: 5, Precedence: Routine, Seq: 9}}
		if edit != nil {
			edit(rs)
		}
		return &Receipts{From: "bravo", Receipts: rs}
	}
	if err := batch(nil).Validate(); err != nil {
		t.Fatalf("good receipts (one without an id): %v", err)
	}
	cases := []struct {
		name string
		r    *Receipts
		want string
	}{
		{"DEL in receipt id", batch(func(rs []Receipt) { rs[1].ID = "x\x7f" }), "receipt 1 (rseq 5): queue: invalid: message id contains control character U+007F"},
		{"long receipt id", batch(func(rs []Receipt) { rs[0].ID = strings.Repeat("i", MaxIDLen+1) }), "receipt 0 (rseq 4)"},
		{"gap", batch(func(rs []Receipt) { rs[1].RSeq = 7 }), "receipt 1 is malformed (rseq 7 after 4)"},
		{"rseq zero", batch(func(rs []Receipt) { rs[0].RSeq = 0 }), "receipt 0 is malformed (rseq 0 after 0)"},
		{"bad precedence", batch(func(rs []Receipt) { rs[1].Precedence = 9 }), "receipt 1 (rseq 5) has invalid precedence 9"},
		{"bad sender", &Receipts{}, "from: queue: invalid: empty site name"},
	}
	for _, c := range cases {
		if err := c.r.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestNoticeFlagFromAPeerReplays: Validate refuses a peer's message
// flagged as an expiry notice before it is proposed, but apply (valid)
// takes one from a log as earlier versions did, so that such a log
// replays the same: stored and in the inbox, outside the unread index.
func TestNoticeFlagFromAPeerReplays(t *testing.T) {
	r := inBatch(1, 1)
	r.Messages[0].Flags |= FlagNotice
	if err := r.Validate("bravo", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v, want ErrInvalid", err)
	}
	if err := r.valid("bravo"); err != nil {
		t.Fatalf("valid = %v: apply must stay as lenient as before", err)
	}
	s, _ := openStore(t, "bravo")
	var l cmdLog
	if res := l.apply(t, s, Command{Op: OpReceive, Time: t1, Receive: r}); res[0].Receive == nil || res[0].Receive.Applied != 1 {
		t.Fatalf("applied %+v", res[0])
	}
	if n := countKeys(t, s, bucketUnread); n != 0 {
		t.Fatalf("%d unread index entries", n)
	}
}
