package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

var (
	errTestStarting = errors.New("test: node is starting")
	errTestNoQuorum = errors.New("test: no quorum")
)

// ackCodes is a table as a node's: the transport's codes and its own.
func ackCodes() *Codes {
	c := NewCodes()
	c.Add("test_kind", errTestKind)
	c.Add("starting", errTestStarting)
	c.Add("no_quorum", errTestNoQuorum)
	return c
}

// A refusal keeps its code through the encoding, and the sender's Codes
// rebuild an error wrapping the same sentinel, with every code of the
// table; an error outside the table travels as text only.
func TestAckCodeRoundTrip(t *testing.T) {
	codes := ackCodes()
	for code, sentinel := range map[string]error{
		CodeUnknownCall: ErrUnknownCall, CodeCallScope: ErrCallScope,
		"test_kind": errTestKind, "starting": errTestStarting, "no_quorum": errTestNoQuorum,
	} {
		a := codes.Refusal(fmt.Errorf("b1: %w", sentinel), "b2")
		if a.Code != code || a.Error != "b1: "+sentinel.Error() || a.Leader != "b2" || a.Last != 0 {
			t.Fatalf("Refusal(%v) = %+v, want code %q", sentinel, a, code)
		}
		got, err := decodeAck(appendAck(nil, a))
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("ack %+v: decoded %+v, %v", a, got, err)
		}
		err = got.Err(codes)
		var ce *CallError
		if !errors.Is(err, sentinel) || !errors.As(err, &ce) || ce.Op != "batch" || ce.Code != code || ce.Leader != "b2" || ce.Msg != a.Error {
			t.Fatalf("code %s: Err = %#v", code, err)
		}
		// A sender without the code (another version) keeps the text.
		if code != CodeUnknownCall && code != CodeCallScope {
			if err := got.Err(nil); err == nil || errors.Is(err, sentinel) || errors.Unwrap(err) != nil || err.Error() != a.Error {
				t.Fatalf("code %s unknown to the sender: %v", code, err)
			}
		}
	}
	plain := codes.Refusal(errors.New("disk on fire"), "")
	if plain.Code != "" || plain.Error != "disk on fire" {
		t.Fatalf("uncoded refusal: %+v", plain)
	}
	if err := plain.Err(codes); err == nil || errors.Unwrap(err) != nil || err.Error() != "disk on fire" {
		t.Fatalf("uncoded refusal: Err = %v", err)
	}
	if err := (&Ack{Last: 9, Leader: "b1"}).Err(codes); err != nil {
		t.Fatalf("an accepting ack read as %v", err)
	}
}

// An ack without a code encodes as the three-field ack of before, and a
// trailer holding an empty code is refused as a protocol violation.
func TestAckCodeEncoding(t *testing.T) {
	plain := &Ack{Last: 300, Leader: "b1", Error: "e"}
	three := queue.AppendString(queue.AppendString(binary.AppendUvarint(nil, plain.Last), plain.Leader), plain.Error)
	if got := appendAck(nil, plain); !bytes.Equal(got, three) {
		t.Fatalf("ack without code: %x, want the three-field form %x", got, three)
	}
	coded := &Ack{Last: 300, Leader: "b1", Error: "e", Code: "starting"}
	if got := appendAck(nil, coded); !bytes.Equal(got, queue.AppendString(bytes.Clone(three), "starting")) {
		t.Fatalf("coded ack: %x", got)
	}
	if _, err := decodeAck(queue.AppendString(three, "")); err == nil {
		t.Fatal("empty code accepted")
	} else if _, ok := asViolation(err); !ok {
		t.Fatalf("empty code: %v is not a protocol violation", err)
	}
	// Truncated or extended coded acks are refused too.
	p := appendAck(nil, coded)
	for n := len(three) + 1; n < len(p); n++ {
		if _, err := decodeAck(p[:n]); err == nil {
			t.Fatalf("coded ack truncated to %d of %d bytes accepted", n, len(p))
		}
	}
	if _, err := decodeAck(append(bytes.Clone(p), 0)); err == nil {
		t.Fatal("coded ack with a trailing byte accepted")
	}
}

// Over a real link: a handler's refusal and a handler's error both reach
// the sender coded, the error by the receiver's routing table.
func TestAckCodeOverTheLink(t *testing.T) {
	ca := linktest.NewCA(t)
	codes := ackCodes()
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, func(c *Config) {
		c.Calls = NewRoutes(codes, func() string { return "b3" })
	})
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		if b.Messages[0].Seq == 1 {
			return codes.Refusal(fmt.Errorf("b1: %w", errTestStarting), "b2"), nil
		}
		return nil, fmt.Errorf("propose: %w", errTestNoQuorum)
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 20*time.Second)
	for _, tc := range []struct {
		seq  uint64
		want *Ack
		is   error
	}{
		{1, &Ack{Error: "b1: " + errTestStarting.Error(), Code: "starting", Leader: "b2"}, errTestStarting},
		{2, &Ack{Error: "propose: " + errTestNoQuorum.Error(), Code: "no_quorum", Leader: "b3"}, errTestNoQuorum},
	} {
		ack, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, tc.seq, 1, 10))
		if err != nil || !reflect.DeepEqual(ack, tc.want) || !errors.Is(ack.Err(codes), tc.is) {
			t.Fatalf("seq %d: ack %+v, err %v; want %+v wrapping %v", tc.seq, ack, err, tc.want, tc.is)
		}
	}
}

// A batch becomes the command that applies it: its messages (OpReceive)
// or its receipts (OpReceipts), sharing its slices.
func TestBatchCommand(t *testing.T) {
	b := msgBatch("alpha", "bravo", queue.Flash, 4, 2, 8)
	cmd, err := b.Command(42)
	if err != nil || cmd.Op != queue.OpReceive || cmd.Time != 42 || cmd.Receipts != nil ||
		!reflect.DeepEqual(cmd.Receive, &queue.Receive{Origin: "alpha", Precedence: queue.Flash, Messages: b.Messages}) ||
		&cmd.Receive.Messages[0] != &b.Messages[0] {
		t.Fatalf("messages batch: %+v %v", cmd, err)
	}
	r := &Batch{Kind: BatchReceipts, From: "bravo", To: "alpha", Receipts: []queue.Receipt{{RSeq: 1, ID: "x", Precedence: queue.Routine}}}
	cmd, err = r.Command(43)
	if err != nil || cmd.Op != queue.OpReceipts || cmd.Time != 43 || cmd.Receive != nil ||
		!reflect.DeepEqual(cmd.Receipts, &queue.Receipts{From: "bravo", Receipts: r.Receipts}) {
		t.Fatalf("receipts batch: %+v %v", cmd, err)
	}
	if cmd, err := (&Batch{Kind: 9, From: "alpha", To: "bravo"}).Command(44); cmd != nil || !errors.Is(err, ErrBadBatch) {
		t.Fatalf("unknown kind: %+v %v, want ErrBadBatch", cmd, err)
	}
}
