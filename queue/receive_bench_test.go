package queue

import "testing"

// benchReceiveCommand is benchSubmitCommand's 100 messages of 512 bytes
// as they arrive at the destination: what it proposes for one batch from
// the link.
func benchReceiveCommand() *Command {
	items := benchSubmitCommand().Submit.Items
	msgs := make([]Message, len(items))
	for i, it := range items {
		msgs[i] = Message{ID: it.ID, Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: uint64(1000 + i),
			Key: it.Key, Payload: it.Payload, SubmittedAt: t0 + int64(i), ExpiresAt: it.ExpiresAt}
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
