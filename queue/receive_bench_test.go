package queue

import (
	"fmt"
	"testing"
)

// benchReceiveCommand is a Receive command of 100 inbound messages of 512
// bytes with UUID-like IDs, a key on every tenth: what a destination
// proposes for one batch from the link.
func benchReceiveCommand() *Command {
	const perEntry, size = 100, 512
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	msgs := make([]Message, perEntry)
	for i := range msgs {
		msgs[i] = Message{ID: fmt.Sprintf("0190c6a2-7b3e-7%03d-8a1b-4c2d3e4f5a6b", i), Origin: "alpha", Dest: "bravo",
			Precedence: Routine, Seq: uint64(1000 + i), Payload: payload, SubmittedAt: t0 + int64(i)}
		if i%10 == 0 {
			msgs[i].Key = "key-" + msgs[i].ID
		}
	}
	return &Command{Op: OpReceive, Time: t1, Receive: &Receive{Origin: "alpha", Precedence: Routine, Messages: msgs}}
}

// BenchmarkEncodeDecodeReceive measures the log codec on the receive
// path: a Receive command of 100 messages of 512 bytes encoded (the
// node that took the batch) and decoded (every node's Apply).
func BenchmarkEncodeDecodeReceive(b *testing.B) {
	cmd := benchReceiveCommand()
	b.SetBytes(100 * 512)
	b.ReportAllocs()
	for b.Loop() {
		d, err := cmd.Encode()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeCommand(d); err != nil {
			b.Fatal(err)
		}
	}
}
