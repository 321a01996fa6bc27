package transport

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

func TestCodecRoundTrip(t *testing.T) {
	batches := []*Batch{
		msgBatch("alpha", "bravo", queue.Flash, 1, 5, 100),
		msgBatch("alpha", "bravo", queue.Routine, 1<<62, 1, 0),
		{Kind: BatchMessages, From: "alpha", To: "bravo", Precedence: queue.Priority},
		{Kind: BatchReceipts, From: "bravo", To: "alpha", Receipts: []queue.Receipt{
			{RSeq: 7, Precedence: queue.Immediate, Seq: 1 << 40, ID: "x", ReadAt: -5},
		}},
	}
	batches[1].Messages[0].Flags = 1<<31 - 1 // bit 31 is the encoding's attribute flag
	batches[1].Messages[0].Payload = nil     // empty payloads decode as nil
	for i, b := range batches {
		got, err := decodeBatch(appendBatch(nil, b))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Fatalf("batch %d:\n got %+v\nwant %+v", i, got, b)
		}
	}
	for _, a := range []*Ack{{}, {Last: 1 << 63, Leader: "b2", Error: "no quorum"}, {Last: 7, Error: "no quorum", Code: "no_quorum"}} {
		got, err := decodeAck(appendAck(nil, a))
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("ack %+v: %+v %v", a, got, err)
		}
	}
	for _, c := range []*Call{{}, {Op: "submit", Body: []byte{0, 1, 2}}} {
		got, err := decodeCall(appendCall(nil, c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("call %+v: %+v %v", c, got, err)
		}
	}
	for _, r := range []*Reply{{}, {Body: []byte("x"), Error: "e"}} {
		got, err := decodeReply(appendReply(nil, r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("reply %+v: %+v %v", r, got, err)
		}
	}
}

// Every strict prefix and every one-byte extension of a valid body is
// rejected, as a protocol violation.
func TestCodecRejectsTruncationAndTrailing(t *testing.T) {
	bodies := map[string]struct {
		p      []byte
		decode func([]byte) error
	}{
		"batch":    {appendBatch(nil, msgBatch("alpha", "bravo", queue.Flash, 3, 3, 20)), func(p []byte) error { _, err := decodeBatch(p); return err }},
		"receipts": {appendBatch(nil, &Batch{Kind: BatchReceipts, From: "a", To: "b", Receipts: []queue.Receipt{{RSeq: 1, ID: "x"}}}), func(p []byte) error { _, err := decodeBatch(p); return err }},
		"ack":      {appendAck(nil, &Ack{Last: 300, Leader: "b1", Error: "e"}), func(p []byte) error { _, err := decodeAck(p); return err }},
		"call":     {appendCall(nil, &Call{Op: "op", Body: []byte("body")}), func(p []byte) error { _, err := decodeCall(p); return err }},
		"reply":    {appendReply(nil, &Reply{Body: []byte("body"), Error: "e"}), func(p []byte) error { _, err := decodeReply(p); return err }},
	}
	for name, c := range bodies {
		for n := range len(c.p) {
			err := c.decode(c.p[:n])
			if _, ok := asViolation(err); !ok {
				t.Errorf("%s truncated to %d of %d bytes: %v", name, n, len(c.p), err)
			}
		}
		err := c.decode(append(bytes.Clone(c.p), 0))
		if _, ok := asViolation(err); !ok {
			t.Errorf("%s with a trailing byte: %v", name, err)
		}
	}
}

func TestCodecRejectsOverlongVarint(t *testing.T) {
	// Ack{Last: 0} is 0x00 0x00 0x00; an overlong zero is 0x80 0x00.
	if _, err := decodeAck([]byte{0x80, 0x00, 0, 0}); err == nil {
		t.Fatal("overlong varint accepted")
	}
}

func TestCodecRandomInputNeverPanics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	valid := appendBatch(nil, msgBatch("alpha", "bravo", queue.Flash, 3, 3, 20))
	for range 20000 {
		p := bytes.Clone(valid)
		for range 1 + r.IntN(4) {
			p[r.IntN(len(p))] = byte(r.Uint32())
		}
		decodeBatch(p)
		decodeAck(p)
		decodeCall(p)
		decodeReply(p)
	}
}

// Ids and keys are the receiver's business: the link carries them as
// they are (its decoder checks structure, not content), and the
// receiver's one check of a batch, queue's Validate, refuses those a
// terminal or log could misread, naming the message or receipt (queue's
// TestValidateInboundBatch has every case).
func TestBatchLeavesTextToTheReceiver(t *testing.T) {
	withID := func(id, key string) *Batch {
		b := msgBatch("alpha", "bravo", queue.Routine, 1, 2, 4)
		b.Messages[1].ID, b.Messages[1].Key = id, key
		return b
	}
	receipt := func(id string) *Batch {
		return &Batch{Kind: BatchReceipts, From: "alpha", To: "bravo", Receipts: []queue.Receipt{{RSeq: 1, ID: "ok"}, {RSeq: 2, ID: id}}}
	}
	cases := []struct {
		name string
		b    *Batch
		want string // in the receiver's error
	}{
		{"ANSI escape in id", withID("a\x1b[31mred", ""), "message 1 (seq 2): queue: invalid: message id contains control character U+001B"},
		{"invalid UTF-8 in id", withID("a\xff", ""), "invalid UTF-8 at byte 1"},
		{"NUL in key", withID("ok", "k\x00"), "message 1 (seq 2): queue: invalid: idempotency key"},
		{"DEL in receipt id", receipt("x\x7f"), "receipt 1 (rseq 2): queue: invalid: message id"},
		{"id too long", withID(strings.Repeat("i", queue.MaxIDLen+1), ""), "longer than 255 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.b.check(); err != nil {
				t.Fatalf("sender's check: %v", err)
			}
			got, err := decodeBatch(appendBatch(nil, c.b))
			if err != nil || !reflect.DeepEqual(got, c.b) {
				t.Fatalf("decode: %+v, %v", got, err)
			}
			if got.Kind == BatchMessages {
				err = (&queue.Receive{Origin: got.From, Precedence: got.Precedence, Messages: got.Messages}).Validate(got.To, 0)
			} else {
				err = (&queue.Receipts{From: got.From, Receipts: got.Receipts}).Validate()
			}
			if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("receiver's check: %v; want an error containing %q", err, c.want)
			}
		})
	}
}
