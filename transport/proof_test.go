package transport

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

// withProof sets b's proof and returns b.
func withProof(b *Batch, proof []byte) *Batch {
	b.Proof = proof
	return b
}

// Proofs are optional trailers: a batch or an ack with one round-trips,
// one without reads as it did before proofs existed, and a decoder refuses
// an empty or oversize proof and any truncation inside the trailer.
func TestProofTrailers(t *testing.T) {
	batches := []*Batch{
		withProof(msgBatch("alpha", "bravo", queue.Flash, 1, 2, 10), bytes.Repeat([]byte{9}, MaxProof)),
		withProof(&Batch{Kind: BatchReceipts, From: "bravo", To: "alpha", Receipts: []queue.Receipt{{RSeq: 1, ID: "y"}}}, []byte{1}),
	}
	for i, b := range batches {
		p := appendBatch(nil, b)
		got, err := decodeBatch(p)
		if err != nil || !reflect.DeepEqual(got, b) {
			t.Fatalf("batch %d: %+v, %v", i, got, err)
		}
		// Without its proof, the body is the same batch without one.
		bare := *b
		bare.Proof = nil
		if q := appendBatch(nil, &bare); !bytes.HasPrefix(p, q) {
			t.Fatalf("batch %d: a proof changes the bytes before it", i)
		}
		for n := len(appendBatch(nil, &bare)) + 1; n < len(p); n++ {
			if _, err := decodeBatch(p[:n]); !isViolation(err) {
				t.Fatalf("batch %d truncated to %d of %d bytes inside its proof: %v", i, n, len(p), err)
			}
		}
	}
	acks := []*Ack{
		{Last: 7, Proof: []byte("signed")},
		{Last: 7, Leader: "b1", Error: "e", Code: "bad", Proof: bytes.Repeat([]byte{1}, MaxProof)},
	}
	for _, a := range acks {
		p := appendAck(nil, a)
		got, err := decodeAck(p)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("ack %+v: %+v, %v", a, got, err)
		}
		bare := *a
		bare.Proof = nil
		for n := len(appendAck(nil, &bare)) + 1; n < len(p); n++ {
			if _, err := decodeAck(p[:n]); !isViolation(err) {
				t.Fatalf("ack truncated to %d of %d bytes inside its proof: %v", n, len(p), err)
			}
		}
	}

	bad := map[string]func() error{
		"batch with an empty proof": func() error {
			_, err := decodeBatch(queue.AppendBytes(appendBatch(nil, msgBatch("alpha", "bravo", queue.Flash, 1, 1, 1)), nil))
			return err
		},
		"batch with an oversize proof": func() error {
			_, err := decodeBatch(appendBatch(nil, withProof(msgBatch("alpha", "bravo", queue.Flash, 1, 1, 1), make([]byte, MaxProof+1))))
			return err
		},
		"ack with an empty proof": func() error {
			_, err := decodeAck(queue.AppendBytes(appendAck(nil, &Ack{Last: 1, Code: "c"}), nil))
			return err
		},
		"ack with an empty code and no proof": func() error {
			_, err := decodeAck(queue.AppendString(appendAck(nil, &Ack{Last: 1}), ""))
			return err
		},
		"ack with an oversize proof": func() error {
			_, err := decodeAck(appendAck(nil, &Ack{Last: 1, Proof: make([]byte, MaxProof+1)}))
			return err
		},
	}
	for name, decode := range bad {
		if err := decode(); !isViolation(err) {
			t.Errorf("%s: %v, want a protocol violation", name, err)
		}
	}
}

func isViolation(err error) bool {
	_, ok := asViolation(err)
	return ok
}

// Over QUIC the link carries proofs both ways and only checks their size:
// an oversize one is refused before sending (ErrBadBatch), and a
// handler's oversize ack proof becomes a refusal, not a broken frame.
func TestProofsTravel(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	receipt := []byte("bravo holds it")
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		if len(b.Proof) == 1 {
			return &Ack{Last: 1, Proof: make([]byte, MaxProof+1)}, nil
		}
		return &Ack{Last: b.Messages[len(b.Messages)-1].Seq, Proof: append(receipt, b.Proof...)}, nil
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 20*time.Second)

	sent := withProof(msgBatch("alpha", "bravo", queue.Routine, 1, 3, 64), []byte("alpha sent it"))
	ack, err := a1.link.SendBatch(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bravo holds italpha sent it"; string(ack.Proof) != want || ack.Last != 3 || ack.Error != "" {
		t.Fatalf("ack %+v (proof %q), want proof %q", ack, ack.Proof, want)
	}

	_, err = a1.link.SendBatch(ctx, withProof(msgBatch("alpha", "bravo", queue.Routine, 1, 1, 1), make([]byte, MaxProof+1)))
	if !errors.Is(err, ErrBadBatch) {
		t.Fatalf("oversize proof: %v, want ErrBadBatch", err)
	}

	ack, err = a1.link.SendBatch(ctx, withProof(msgBatch("alpha", "bravo", queue.Routine, 1, 1, 1), []byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Error == "" || ack.Proof != nil {
		t.Fatalf("a handler's oversize ack proof: %+v, want a refusal without a proof", ack)
	}
}
