package queue

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func encodingSamples() ([]Message, []Receipt) {
	ch := Channel{"alpha", "bravo", Priority}
	msgs := []Message{
		{ID: "0190c6a2-7b3e-7000-8a1b-4c2d3e4f5a6b", Seq: 1, Key: "k", Payload: bytes.Repeat([]byte{0, 0xff}, 100), Flags: FlagDrill, SubmittedAt: t1, ExpiresAt: t4},
		{ID: "m2", Seq: math.MaxUint64, Flags: math.MaxUint32 >> 1, SubmittedAt: math.MinInt64, ExpiresAt: math.MaxInt64},
		{},
		{ID: "m3", Seq: 3, Payload: []byte("x"), Mailbox: "cert", From: "watch", Type: "application/stix+json;version=2.1"},
		{ID: "m4", Seq: 4, Type: "text/plain"},
	}
	for i := range msgs {
		msgs[i].Origin, msgs[i].Dest, msgs[i].Precedence = ch.Origin, ch.Dest, ch.Precedence
	}
	rcpts := []Receipt{
		{RSeq: 1, Precedence: Flash, Seq: 7, ID: "m7", ReadAt: t1},
		{RSeq: math.MaxUint64, Precedence: Routine, Seq: 0, ReadAt: -1},
	}
	return msgs, rcpts
}

// TestEncodingRoundTrip: messages and receipts decode to what was
// encoded, lengths are exact, and every prefix or extension is refused.
func TestEncodingRoundTrip(t *testing.T) {
	msgs, rcpts := encodingSamples()
	b := AppendReceipts(AppendMessages(nil, msgs), rcpts)
	n := uvarintLen(uint64(len(msgs))) + uvarintLen(uint64(len(rcpts)))
	for i := range msgs {
		n += MessageLen(&msgs[i])
	}
	for i := range rcpts {
		n += ReceiptLen(&rcpts[i])
	}
	if n != len(b) {
		t.Fatalf("MessageLen and ReceiptLen add up to %d for %d bytes", n, len(b))
	}
	d := NewDecoder(b)
	gotM, gotR := d.Messages(Channel{"alpha", "bravo", Priority}, 10), d.Receipts(10)
	if err := d.Finish(); err != nil || !reflect.DeepEqual(gotM, msgs) || !reflect.DeepEqual(gotR, rcpts) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, gotM, gotR)
	}
	for k := range len(b) {
		d := NewDecoder(b[:k])
		d.Messages(Channel{}, 10)
		d.Receipts(10)
		if d.Finish() == nil {
			t.Fatalf("a prefix of %d of %d bytes decoded", k, len(b))
		}
	}
	d = NewDecoder(append(bytes.Clone(b), 0))
	d.Messages(Channel{}, 10)
	d.Receipts(10)
	if err := d.Finish(); err == nil || !strings.Contains(err.Error(), "1 trailing bytes at byte") {
		t.Fatalf("a trailing byte: %v", err)
	}
}

func TestDecoderLimits(t *testing.T) {
	msgs, _ := encodingSamples()
	b := AppendMessages(nil, msgs)
	d := NewDecoder(b)
	if got := d.Messages(Channel{}, 2); got != nil || d.Err() == nil || !strings.Contains(d.Err().Error(), "count 5 exceeds the limit of 2 items") {
		t.Fatalf("over the limit: %v, %v", got, d.Err())
	}
	forged := append([]byte{0xff, 0xff, 0x03}, make([]byte, 100)...) // 65535 messages claimed
	d = NewDecoder(forged)
	if got := d.Messages(Channel{}, 100000); got != nil || !strings.Contains(d.Err().Error(), "list longer than the input") {
		t.Fatalf("forged count: %v, %v", got, d.Err())
	}
	for _, in := range [][]byte{{0x80, 0x00}, {0x81, 0x00}} {
		if d := NewDecoder(in); d.Uvarint() != 0 || !strings.Contains(d.Err().Error(), "non-minimal varint at byte 0") {
			t.Fatalf("%x: %v", in, d.Err())
		}
	}
	if d := NewDecoder([]byte{1, 4}); d.Byte() != 1 || d.Precedence() != 0 || !strings.Contains(d.Err().Error(), "invalid precedence 4 at byte 2") {
		t.Fatalf("precedence: %v", d.Err())
	}
}

// FuzzDecodeMessages: a list of messages and one of receipts decode from
// any bytes without panicking, within the input's bounds, or re-encode
// to exactly those bytes (the encoding is canonical).
func FuzzDecodeMessages(f *testing.F) {
	msgs, rcpts := encodingSamples()
	f.Add(AppendReceipts(AppendMessages(nil, msgs), rcpts))
	f.Add(AppendReceipts(AppendMessages(nil, nil), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewDecoder(b)
		ms, rs := d.Messages(Channel{"a", "b", Flash}, 1000), d.Receipts(1000)
		if d.Finish() != nil {
			return
		}
		if len(ms)*minMessageLen+len(rs)*minReceiptLen > len(b) {
			t.Fatalf("%d messages and %d receipts from %d bytes", len(ms), len(rs), len(b))
		}
		if again := AppendReceipts(AppendMessages(nil, ms), rs); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}
