package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// testEvidence is a statement (its text) and n leaves from first; leaf
// i is derived from the statement and i.
func testEvidence(stmt string, first uint64, n int) *Evidence {
	e := &Evidence{Statement: []byte(stmt), First: first}
	for i := range n {
		e.Leaves = append(e.Leaves, sha256.Sum256(fmt.Appendf(nil, "%s/%d", stmt, i)))
	}
	return e
}

// evReceiveCmd is a batch of n messages "in-SEQ" from bravo to alpha
// (routine), from sequence first, with evidence stmt.
func evReceiveCmd(now int64, stmt string, first uint64, n int) Command {
	var msgs []Message
	for seq := first; seq < first+uint64(n); seq++ {
		msgs = append(msgs, Message{ID: fmt.Sprintf("in-%d", seq), Origin: "bravo", Dest: "alpha", Precedence: Routine,
			Seq: seq, Payload: fmt.Appendf(nil, "payload %d", seq), SubmittedAt: t0})
	}
	c := receiveCmd(now, "bravo", Routine, msgs...)
	c.Receive.Evidence = testEvidence(stmt, first, n)
	return c
}

// evReceiptsCmd is a batch of receipts from bravo, from RSeq first, for
// the routine outbound messages "out-SEQ" of seqs, with evidence stmt.
func evReceiptsCmd(now int64, stmt string, first uint64, seqs ...uint64) Command {
	var rcs []Receipt
	for i, seq := range seqs {
		rcs = append(rcs, Receipt{RSeq: first + uint64(i), Precedence: Routine, Seq: seq, ID: fmt.Sprintf("out-%d", seq), ReadAt: now - 1})
	}
	c := receiptsCmd(now, "bravo", rcs...)
	c.Receipts.Evidence = testEvidence(stmt, first, len(seqs))
	return c
}

// withoutEvidence returns c with its bodies' evidence removed (what
// versions 1 to 3 encode).
func withoutEvidence(c Command) Command {
	if r := c.Receive; r != nil {
		n := *r
		n.Evidence = nil
		c.Receive = &n
	}
	if r := c.Receipts; r != nil {
		n := *r
		n.Evidence = nil
		c.Receipts = &n
	}
	if d := c.Delivered; d != nil {
		n := *d
		n.Proofs = nil
		c.Delivered = &n
	}
	return c
}

// encodeUnchecked is Encode without the evidence checks: how a broken or
// hostile proposer could write an entry.
func encodeUnchecked(t testing.TB, c Command) []byte {
	t.Helper()
	plain := withoutEvidence(c)
	enc, err := plain.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b := c.appendEvidence([]byte{cmdVersion5})
	b = append(b, enc[2:len(enc)-cmdSumLen]...) // after version and an empty evidence section
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Entries written by the previous version (format 3), kept as they were
// written: they still decode, without evidence.
var v3Entries = []struct {
	hex  string
	want Command
}{
	{"03077265636569766580f8d28fddbfce972f0405616c706861030105616c70686105627261766f03026d310100036f6e650080a8a69ccebfce972f0062d6385e",
		receiveCmd(t3, "alpha", Routine, Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 1, Payload: []byte("one"), SubmittedAt: t1})},
	{"0308726563656970747380a8a69ccebfce972f1005627261766f01010007026d3780a8a69ccebfce972f9ebdac44",
		receiptsCmd(t1, "bravo", Receipt{RSeq: 1, Precedence: Flash, Seq: 7, ID: "m7", ReadAt: t1})},
	{"030964656c69766572656480d0fcd5d5bfce972f0205627261766f02090952d838",
		deliveredCmd(t2, "bravo", Priority, 9)},
}

func TestDecodeVersion3Entries(t *testing.T) {
	for i, e := range v3Entries {
		b, err := hex.DecodeString(e.hex)
		if err != nil {
			t.Fatal(err)
		}
		c, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !reflect.DeepEqual(plain(c), e.want) {
			t.Fatalf("entry %d:\n got %+v\nwant %+v", i, *c, e.want)
		}
		// Re-encoded, it is a version 4 entry of the same command.
		enc, err := c.Encode()
		if err != nil || enc[0] != cmdVersion5 {
			t.Fatalf("entry %d re-encoded: %x, %v", i, enc, err)
		}
		if again, err := DecodeCommand(enc); err != nil || !reflect.DeepEqual(plain(again), e.want) {
			t.Fatalf("entry %d as version 4: %+v, %v", i, again, err)
		}
	}
}

func TestEvidenceRoundTrip(t *testing.T) {
	for i, c := range []Command{
		evReceiveCmd(t1, "statement of a batch", 3, 4),
		evReceiptsCmd(t2, "receipts", 9, 4, 5, 6),
		{Op: OpDelivered, Time: t3, Delivered: &DeliveredCmd{Dest: "bravo", Precedence: Routine, UpTo: MaxEvidenceLeaves + 2,
			Proofs: []DeliveredProof{{Evidence: testEvidence("held", 1, MaxEvidenceLeaves), Sent: testEvidence(strings.Repeat("s", MaxStatementLen), 2, 2)},
				{Evidence: testEvidence("next", MaxEvidenceLeaves, 3)}}}},
	} {
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		got, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if !reflect.DeepEqual(plain(got), c) {
			t.Fatalf("command %d: round trip\n got %+v\nwant %+v", i, *got, c)
		}
	}
}

// badEvidence are commands whose evidence does not fit them or is over
// the bounds, and the error each gets.
func badEvidence() []struct {
	name string
	cmd  Command
	want string
} {
	recv := func(mod func(*Evidence)) Command {
		c := evReceiveCmd(t1, "recv", 1, 3)
		mod(c.Receive.Evidence)
		return c
	}
	rcpt := func(mod func(*Evidence)) Command {
		c := evReceiptsCmd(t1, "read", 1, 1, 2)
		mod(c.Receipts.Evidence)
		return c
	}
	deliv := func(e *Evidence) Command {
		c := deliveredCmd(t1, "bravo", Routine, 3)
		c.Delivered.Proofs = []DeliveredProof{{Evidence: testEvidence("d", 1, 3), Sent: e}}
		return c
	}
	proofs := func(upTo uint64, ps ...DeliveredProof) Command {
		c := deliveredCmd(t1, "bravo", Routine, upTo)
		c.Delivered.Proofs = ps
		return c
	}
	pr := func(first uint64, n int) DeliveredProof { return DeliveredProof{Evidence: testEvidence("d", first, n)} }
	return []struct {
		name string
		cmd  Command
		want string
	}{
		{"receive: a leaf too few", recv(func(e *Evidence) { e.Leaves = e.Leaves[:2] }), "2 leaves for 3 items"},
		{"receive: a leaf too many", recv(func(e *Evidence) { e.Leaves = append(e.Leaves, [32]byte{}) }), "4 leaves for 3 items"},
		{"receive: other first", recv(func(e *Evidence) { e.First = 2 }), "leaves start at sequence 2, the items at 1"},
		{"receive: no statement", recv(func(e *Evidence) { e.Statement = nil }), "statement of 0 bytes"},
		{"receive: oversize statement", recv(func(e *Evidence) { e.Statement = make([]byte, MaxStatementLen+1) }), "statement of 16385 bytes"},
		{"receive: empty batch", func() Command {
			c := receiveCmd(t1, "bravo", Routine)
			c.Receive.Evidence = testEvidence("x", 1, 1)
			return c
		}(), "1 leaves for 0 items"},
		{"receipts: a leaf too few", rcpt(func(e *Evidence) { e.Leaves = e.Leaves[:1] }), "1 leaves for 2 items"},
		{"receipts: other first", rcpt(func(e *Evidence) { e.First = 7 }), "leaves start at sequence 7, the items at 1"},
		{"delivered: no leaves", deliv(&Evidence{Statement: []byte("s"), First: 1}), "0 leaves"},
		{"delivered: too many leaves", deliv(testEvidence("s", 1, MaxEvidenceLeaves+1)), "10001 leaves"},
		{"delivered: first 0", deliv(testEvidence("s", 0, 1)), "out of range"},
		{"delivered: past the last sequence", deliv(testEvidence("s", 1<<64-1, 2)), "out of range"},
		{"delivered: up_to beyond the proofs", proofs(9, pr(1, 3)), "proofs end at 3, not at up_to 9"},
		{"delivered: up_to below the proofs", proofs(2, pr(1, 3)), "proofs end at 3, not at up_to 2"},
		{"delivered: a gap between proofs", proofs(9, pr(1, 3), pr(5, 5)), "does not continue the run ending at 3"},
		{"delivered: proofs out of order", proofs(3, pr(4, 3), pr(1, 3)), "does not continue the run ending at 6"},
		{"delivered: too many proofs", proofs(MaxDeliveredProofs+1, func() []DeliveredProof {
			var ps []DeliveredProof
			for i := range MaxDeliveredProofs + 1 {
				ps = append(ps, pr(uint64(i+1), 1))
			}
			return ps
		}()...), "65 proofs (at most 64)"},
	}
}

// TestBadEvidenceRefused: Validate, Encode, DecodeCommand and Apply each
// refuse evidence that does not fit its command, and nothing changes.
func TestBadEvidenceRefused(t *testing.T) {
	for _, tc := range badEvidence() {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cmd
			var verr error
			switch {
			case c.Receive != nil:
				verr = c.Receive.Validate("alpha", 0)
			case c.Receipts != nil:
				verr = c.Receipts.Validate()
			}
			if c.Delivered == nil && (!errors.Is(verr, ErrInvalid) || !strings.Contains(verr.Error(), tc.want)) {
				t.Fatalf("Validate: %v; want ErrInvalid containing %q", verr, tc.want)
			}
			if b, err := c.Encode(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode: %x, %v", b, err)
			}
			got, err := DecodeCommand(encodeUnchecked(t, c))
			if got != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeCommand: %+v, %v", got, err)
			}
			if !strings.Contains(err.Error(), tc.want) && !strings.Contains(err.Error(), "exceeds the limit") {
				t.Fatalf("DecodeCommand: %v; want %q", err, tc.want)
			}
			// A JSON entry is not checked when decoded: Apply refuses it.
			s, _ := openStore(t, "alpha")
			var l cmdLog
			l.apply(t, s, submitCmd(t0, item("out-1", "bravo", Routine, "x")))
			before := rawDump(t, s)
			js, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			res := s.Apply([]Entry{{Index: 2, Data: js}, {Index: 3, Data: encodeUnchecked(t, c)}})
			for i, r := range res {
				if !strings.Contains(r.Err, "invalid") || r.Receive != nil || r.Receipts != nil {
					t.Fatalf("entry %d applied: %+v", i, r)
				}
			}
			after := rawDump(t, s)
			before[metaAppliedAt(before)] = after[metaAppliedAt(after)] // only the applied index moves
			assertSameRaw(t, before, after)
		})
	}
}

// metaAppliedAt returns the index of the applied index in a rawDump.
func metaAppliedAt(dump []string) int {
	key := "meta/" + hex.EncodeToString(metaApplied) + "="
	for i, s := range dump {
		if strings.HasPrefix(s, key) {
			return i
		}
	}
	return 0
}

// TestDecodeEvidenceMalformed: the evidence section's own faults.
func TestDecodeEvidenceMalformed(t *testing.T) {
	good := evReceiveCmd(t1, "recv", 1, 1)
	enc, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	body := enc[1 : len(enc)-cmdSumLen]
	evLen := good.evidenceLen()
	withSum := func(b []byte) []byte { return be.AppendUint32(b, crc32.Checksum(b, castagnoli)) }
	v4 := func(parts ...[]byte) []byte { return withSum(append([]byte{cmdVersion5}, bytes.Join(parts, nil)...)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown evidence bit", v4([]byte{0x10}, body[1:]), "unknown evidence 0x10"},
		{"evidence of an absent body", v4([]byte{evBitReceipts}, body[1:evLen], body[evLen:]), "for an absent body"},
		{"forged statement length", v4([]byte{evBitReceive, 0xff, 0xff, 0x03}, make([]byte, 100)), "beyond the end"},
		{"oversize statement", v4([]byte{evBitReceive, 0x81, 0x80, 0x01}, make([]byte, 16385+100)), "exceeds the limit of 16384"},
		{"forged leaf count", v4([]byte{evBitReceive, 1, 's', 1, 0x90, 0x4e}, make([]byte, 100)), "list longer"},
		{"too many leaves", v4([]byte{evBitReceive, 1, 's', 1, 0x91, 0x4e}, make([]byte, 32*10001)), "exceeds the limit of 10000"},
		{"truncated leaves", v4(body[:evLen-1]), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand(tc.in)
			if c != nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeCommand = %+v, %v; want ErrInvalid containing %q", c, err, tc.want)
			}
		})
	}
}

// TestDeliveredProofWithoutEvidence: a proof without the destination's
// statement cannot be encoded (version 4 has no way to write it) and a
// JSON entry carrying one is refused by Apply.
func TestDeliveredProofWithoutEvidence(t *testing.T) {
	c := deliveredCmd(t1, "bravo", Routine, 1)
	c.Delivered.Proofs = []DeliveredProof{{Sent: testEvidence("s", 1, 1)}}
	if _, err := c.Encode(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "proof 0: no evidence") {
		t.Fatalf("Encode: %v", err)
	}
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t0, item("out-1", "bravo", Routine, "x")))
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if res := s.Apply([]Entry{{Index: 2, Data: js}}); !strings.Contains(res[0].Err, "no evidence") {
		t.Fatalf("applied: %+v", res[0])
	}
	if ch := s.Outbound(); len(ch) != 1 || ch[0].Acked != 0 {
		t.Fatalf("channel after a refused delivery: %+v", ch)
	}
}
