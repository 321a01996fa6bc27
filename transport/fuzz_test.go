package transport

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

// Fuzz tests for every decoder of peer input: frame headers and bodies as
// read from a stream, batch, ack, call and reply bodies, probes. Each
// checks that bad input is a protocol violation (never a panic or another
// error), that what decodes re-encodes to the same bytes, and that what is
// allocated is bounded by the input.

func FuzzReadFrame(f *testing.F) {
	f.Add(batchFrame(msgBatch("alpha", "bravo", queue.Flash, 3, 2, 10)))
	f.Add(frameOf(frameAck, appendAck(nil, &Ack{Last: 7, Leader: "b1"})))
	f.Add(frameOf(frameProbe, binary.BigEndian.AppendUint64(nil, 42)))
	f.Add(append(frameOf(frameCall, appendCall(nil, &Call{Op: "x"})), 0))
	f.Add([]byte{0x00, 0x6f, 0xff, 0xff, frameBatch}) // claims 7 MiB, sends nothing
	const max = 1 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		typ, body, err := readFrame(r, max)
		if err != nil {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("non-violation error %v", err)
			}
			return
		}
		// The buffer is exactly the body: nothing was allocated from
		// the header beyond what arrived.
		if cap(body) != len(body) || len(body) > len(data)-headerLen {
			t.Fatalf("body len %d cap %d from %d bytes", len(body), cap(body), len(data))
		}
		if !bytes.Equal(frameOf(typ, body), data[:headerLen+len(body)]) {
			t.Fatal("frame does not re-encode to its input")
		}
		err = readEOF(r)
		if r.Len() == 0 && len(data) == headerLen+len(body) && err != nil {
			t.Fatalf("readEOF at the end: %v", err)
		}
		if len(data) > headerLen+len(body) {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("data after the frame: %v", err)
			}
		}
	})
}

func FuzzProbe(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint64(nil, 1))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{7}, maxProbeBody+1))
	f.Fuzz(func(t *testing.T, body []byte) {
		echo, err := echoFrame(body)
		if len(body) > maxProbeBody {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("probe of %d bytes: %v", len(body), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, got, err := readFrame(bytes.NewReader(echo), maxProbeBody)
		if err != nil || typ != frameEcho || !bytes.Equal(got, body) {
			t.Fatalf("echo %x of %x: type %d, %v", got, body, typ, err)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendBatch(nil, msgBatch("alpha", "bravo", queue.Flash, 3, 2, 10)))
	f.Add(appendBatch(nil, msgBatch("alpha", "bravo", queue.Routine, 1<<40, 1, 0)))
	f.Add(appendBatch(nil, &Batch{Kind: BatchReceipts, From: "a", To: "b", Receipts: []queue.Receipt{{RSeq: 1}}}))
	f.Add(appendBatch(nil, &Batch{Kind: BatchReceipts, From: "bravo", To: "alpha", Receipts: []queue.Receipt{
		{RSeq: 7, Precedence: queue.Immediate, Seq: 1 << 40, ID: "café", ReadAt: -5}}}))
	f.Add(minimalBatch(BatchMessages, 3))
	f.Add(appendBatch(nil, withProof(msgBatch("alpha", "bravo", queue.Flash, 1, 1, 3), []byte("signed"))))
	f.Add(queue.AppendBytes(appendBatch(nil, msgBatch("alpha", "bravo", queue.Flash, 1, 1, 3)), nil)) // empty proof: refused
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := decodeBatch(p)
		if err != nil {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("non-violation error %v", err)
			}
			return
		}
		// What decodes is consistent: decodeBatch checks only the shape
		// because the decoder gives the items the batch's channel and
		// refuses invalid precedences.
		if err := b.check(); err != nil {
			t.Fatalf("a decoded batch fails check: %v", err)
		}
		// Bounded: at most MaxBatchItems items, and the strings copied
		// out of the body are no longer than the body.
		if n := len(b.Messages) + len(b.Receipts); n > MaxBatchItems {
			t.Fatalf("%d items", n)
		}
		if len(b.Proof) > MaxProof || (b.Proof != nil && len(b.Proof) == 0) {
			t.Fatalf("proof of %d bytes", len(b.Proof))
		}
		copied := len(b.From) + len(b.To)
		for _, m := range b.Messages {
			copied += len(m.ID) + len(m.Key)
		}
		for _, r := range b.Receipts {
			copied += len(r.ID)
		}
		if copied > len(p) {
			t.Fatalf("%d bytes of strings from a %d-byte body", copied, len(p))
		}
		// Whatever decodes passes the sender's check and re-encodes to
		// the same bytes.
		if err := b.check(); err != nil {
			t.Fatalf("decoded batch fails check: %v", err)
		}
		if q := appendBatch(nil, b); !bytes.Equal(p, q) {
			t.Fatalf("re-encoding differs:\n%x\n%x", p, q)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add(appendAck(nil, &Ack{}))
	f.Add(appendAck(nil, &Ack{Last: 1 << 63, Leader: "b2", Error: "no quorum"}))
	f.Add(appendAck(nil, &Ack{Last: 3, Leader: "b2", Error: "b1: node is starting", Code: "starting"}))
	f.Add(appendAck(nil, &Ack{Error: "no quorum", Code: "no_quorum"}))
	f.Add(queue.AppendString(appendAck(nil, &Ack{Error: "e"}), "")) // empty code: refused
	f.Add(appendAck(nil, &Ack{Last: 4, Proof: []byte("signed")}))
	f.Add(appendAck(nil, &Ack{Last: 4, Error: "e", Code: "c", Proof: []byte("signed")}))
	f.Add(queue.AppendBytes(appendAck(nil, &Ack{Last: 4, Code: "c"}), nil)) // empty proof: refused
	f.Fuzz(func(t *testing.T, p []byte) {
		a, err := decodeAck(p)
		if err != nil {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("non-violation error %v", err)
			}
			return
		}
		if len(a.Leader)+len(a.Error)+len(a.Code)+len(a.Proof) > len(p) {
			t.Fatal("fields longer than the body")
		}
		if len(a.Proof) > MaxProof {
			t.Fatalf("proof of %d bytes", len(a.Proof))
		}
		if q := appendAck(nil, a); !bytes.Equal(p, q) {
			t.Fatalf("re-encoding differs:\n%x\n%x", p, q)
		}
	})
}

func FuzzDecodeCall(f *testing.F) {
	f.Add(appendCall(nil, &Call{}))
	f.Add(appendCall(nil, &Call{Op: "propose", Body: []byte(`{"op":"submit"}`)}))
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := decodeCall(p)
		if err != nil {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("non-violation error %v", err)
			}
			return
		}
		if len(c.Op)+len(c.Body) > len(p) {
			t.Fatal("fields longer than the body")
		}
		if q := appendCall(nil, c); !bytes.Equal(p, q) {
			t.Fatalf("re-encoding differs:\n%x\n%x", p, q)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(appendReply(nil, &Reply{}))
	f.Add(appendReply(nil, &Reply{Body: []byte("x"), Error: "e"}))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := decodeReply(p)
		if err != nil {
			if _, ok := asViolation(err); !ok {
				t.Fatalf("non-violation error %v", err)
			}
			return
		}
		if len(r.Body)+len(r.Error) > len(p) {
			t.Fatal("fields longer than the body")
		}
		if q := appendReply(nil, r); !bytes.Equal(p, q) {
			t.Fatalf("re-encoding differs:\n%x\n%x", p, q)
		}
	})
}
