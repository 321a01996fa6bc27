package queue

import (
	"fmt"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkApplySubmit applies Submit commands of 100 messages of 512
// bytes each, round-robin over the four precedences of one destination,
// with 1 or 8 such entries per Apply call (Raft's batching). Each entry
// is encoded beforehand, as the proposer does; decoding is measured.
func BenchmarkApplySubmit(b *testing.B) {
	for _, perApply := range []int{1, 8} {
		b.Run(fmt.Sprintf("entries=%d", perApply), func(b *testing.B) {
			const perEntry, size = 100, 512
			s, _ := openStore(b, "alpha")
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(i)
			}
			var l cmdLog
			batches := make([][]Entry, b.N)
			for n := range b.N {
				for e := range perApply {
					items := make([]SubmitItem, perEntry)
					for i := range items {
						id := fmt.Sprintf("%08d-%02d-%03d", n, e, i)
						items[i] = SubmitItem{ID: id, Dest: "bravo", Precedence: Precedence(i % 4), Payload: payload}
						if i%10 == 0 {
							items[i].Key = "key-" + id
						}
					}
					batches[n] = append(batches[n], l.add(b, submitCmd(t0+int64(n), items...))...)
				}
			}
			b.SetBytes(int64(perApply * perEntry * size))
			b.ResetTimer()
			start := time.Now()
			for n := range b.N {
				for _, r := range s.Apply(batches[n]) {
					if r.Err != "" || r.Submit[0].Err != "" {
						b.Fatal(r)
					}
				}
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(b.N*perApply*perEntry)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// benchSubmitCommand is a Submit command of 100 messages of 512 bytes, with
// UUID-like IDs, a key on every tenth and an expiry on every third.
func benchSubmitCommand() *Command {
	const perEntry, size = 100, 512
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	items := make([]SubmitItem, perEntry)
	for i := range items {
		id := fmt.Sprintf("0190c6a2-7b3e-7%03d-8a1b-4c2d3e4f5a6b", i)
		items[i] = SubmitItem{ID: id, Dest: "bravo", Precedence: Precedence(i % 4), Payload: payload}
		if i%10 == 0 {
			items[i].Key = "key-" + id
		}
		if i%3 == 0 {
			items[i].ExpiresAt = t0 + int64(i)*1e9
		}
	}
	return &Command{Op: OpSubmit, Time: t0, Submit: &Submit{Origin: "alpha", Items: items}}
}

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

// BenchmarkEncodeDecodeSubmit measures the log codec on a Submit command
// of 100 messages of 512 bytes: encoding (the proposer), decoding (every
// node's Apply) and both.
func BenchmarkEncodeDecodeSubmit(b *testing.B) { benchCodec(b, benchSubmitCommand()) }

// BenchmarkEncodeDecodeReceive measures it on the receive path: a
// Receive command of 100 messages of 512 bytes, encoded by the node that
// took the batch from the link.
func BenchmarkEncodeDecodeReceive(b *testing.B) { benchCodec(b, benchReceiveCommand()) }

func benchCodec(b *testing.B, cmd *Command) {
	data, err := cmd.Encode()
	if err != nil {
		b.Fatal(err)
	}
	payloadBytes := int64(100 * 512)
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(payloadBytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cmd.Encode(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "entry-bytes")
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(payloadBytes)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeCommand(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("both", func(b *testing.B) {
		b.SetBytes(payloadBytes)
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
	})
}

// BenchmarkOpenCheck measures Open of a store of 100,000 queued messages
// of 512 bytes: the page walk (checkFile), bbolt's check and the rest
// of Open, against a plain bbolt open of the same file.
func BenchmarkOpenCheck(b *testing.B) {
	s, path := openStore(b, "alpha")
	var l cmdLog
	payload := make([]byte, 512)
	for n := range 100 {
		items := make([]SubmitItem, 1000)
		for i := range items {
			items[i] = SubmitItem{ID: fmt.Sprintf("0190c6a2-7b3e-7%03d-8a1b-%012d", n, i), Dest: "bravo", Precedence: Precedence(i % 4), Payload: payload}
		}
		s.Apply(l.add(b, submitCmd(t0+int64(n), items...)))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if err := checkFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(path, "alpha", Options{})
			if err != nil {
				b.Fatal(err)
			}
			_ = s.Close()
		}
	})
	b.Run("bolt.Open", func(b *testing.B) {
		for b.Loop() {
			db, err := bolt.Open(path, 0o600, boltOptions())
			if err != nil {
				b.Fatal(err)
			}
			_ = db.Close()
		}
	})
	if st, err := os.Stat(path); err == nil {
		b.Logf("file: %d bytes", st.Size())
	}
}
