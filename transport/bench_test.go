package transport

import (
	"context"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
)

// BenchmarkSendBatch measures SendBatch of 100 × 512-byte messages between
// two links on loopback, one batch at a time and pipelined.
func BenchmarkSendBatch(b *testing.B) {
	const perBatch, size = 100, 512
	ca := linktest.NewCA(b)
	b1 := startNode(b, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	a1 := startNode(b, ca, "alpha", "a1", []Peer{peerOf(b1)})
	batch := msgBatch("alpha", "bravo", queue.Routine, 1, perBatch, size)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := a1.link.SendBatch(ctx, batch); err != nil { // connect
		b.Fatal(err)
	}
	report := func(b *testing.B) {
		b.SetBytes(perBatch * size)
		secs := b.Elapsed().Seconds()
		b.ReportMetric(float64(b.N*perBatch)/secs, "msgs/s")
	}

	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := a1.link.SendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("pipelined", func(b *testing.B) {
		b.SetParallelism(8) // 8 × GOMAXPROCS batches in flight
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := a1.link.SendBatch(ctx, batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
}
