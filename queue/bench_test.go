package queue

import (
	"fmt"
	"testing"
	"time"
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
