package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// An authenticated peer opens 250 streams, each claiming a 7 MiB frame and
// sending 512 KiB of it, then stalls. Before the fix every claim was
// allocated at once (1,751 MiB of heap for 250 streams). Now the receiver's
// heap grows by less than its documented budget (MaxBuffered), streams
// beyond MaxStreams wait, and the stalled ones are reset by the request
// deadline, after which the budget is whole again.
func TestLargeHeaderStreamsStayWithinBudget(t *testing.T) {
	const (
		frame   = 7 << 20 // the daemon's MaxFrame with its defaults
		streams = 250
		sent    = 512 << 10
	)
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, func(c *Config) {
		c.MaxFrame = frame
		// Deadline 10s + 7s for 7 MiB: the first stream's runs out
		// 17s after it opens, and all 250 must be open and served
		// before then; under the race detector on a busy two-core
		// machine 3s + 7s was once not enough.
		c.RequestTimeout = 10 * time.Second
	})
	budget := b1.link.cfg.MaxBuffered
	if budget != DefaultMaxBuffered || b1.link.cfg.MaxStreams != DefaultMaxStreams {
		t.Fatalf("defaults: MaxBuffered %d, MaxStreams %d", budget, b1.link.cfg.MaxStreams)
	}
	cl, err := rawDial(t, b1.link.Addr("fiber"), ca.Bundle("alpha", "a1").ClientConfig(protocols, b1.id))
	if err != nil {
		t.Fatal(err)
	}
	header := func(n uint32) []byte {
		h := make([]byte, headerLen)
		binary.BigEndian.PutUint32(h, n)
		h[4] = frameBatch
		return h
	}
	chunk := make([]byte, sent)
	before := heapInUse()

	var wg sync.WaitGroup
	var strs []*quic.Stream
	open := func(d time.Duration) (*quic.Stream, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return cl.conn.OpenStreamSync(ctx)
	}
	for i := range streams {
		str, err := open(5 * time.Second)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		strs = append(strs, str)
		str.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := str.Write(header(frame)); err != nil {
			t.Fatalf("stream %d header: %v", i, err)
		}
		wg.Go(func() { str.Write(chunk) }) // blocks on flow control; ends with the reset
	}
	testutil.Eventually(t, 15*time.Second, "all streams being served", func() bool { return b1.link.serving.Load() == streams })
	testutil.Eventually(t, 10*time.Second, "the budget to be spent", func() bool {
		used, waiting := b1.link.budget.inUse()
		return used+frame > budget && waiting == streams-int(budget/frame)
	})
	time.Sleep(500 * time.Millisecond) // let what flow control allows arrive
	growth := int64(heapInUse()) - int64(before)
	used, waiting := b1.link.budget.inUse()
	t.Logf("%d streams claiming %d MiB, %d KiB sent on each: heap growth %.1f MiB (budget %.0f MiB reserved by %d streams, %d waiting)",
		streams, frame>>20, sent>>10, mib(growth), mib(budget), used/frame, waiting)
	if growth > budget {
		t.Errorf("heap grew by %.1f MiB, over the budget of %.0f MiB", mib(growth), mib(budget))
	}

	// Streams up to MaxStreams open; the next one waits.
	for len(strs) < DefaultMaxStreams {
		str, err := open(5 * time.Second)
		if err != nil {
			t.Fatalf("stream %d of %d: %v", len(strs)+1, DefaultMaxStreams, err)
		}
		str.Write(header(frame))
		strs = append(strs, str)
	}
	if _, err := open(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream %d opened beyond MaxStreams: %v", DefaultMaxStreams+1, err)
	}

	// The deadline resets every stalled stream.
	for i, str := range strs {
		str.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := str.Read(make([]byte, 1))
		var se *quic.StreamError
		if !errors.As(err, &se) || !se.Remote || se.ErrorCode != codeTimeout {
			t.Fatalf("stream %d: read %v, want a reset with code %#x", i, err, codeTimeout)
		}
	}
	wg.Wait()
	testutil.Eventually(t, 5*time.Second, "the streams to end", func() bool { return b1.link.serving.Load() == 0 })
	if used, waiting := b1.link.budget.inUse(); used != 0 || waiting != 0 {
		t.Fatalf("budget after the resets: %d bytes used, %d waiting", used, waiting)
	}
	if got := b1.link.timeouts.Load(); got != DefaultMaxStreams {
		t.Errorf("%d requests timed out, want %d", got, DefaultMaxStreams)
	}
	if b1.h.count() != 0 {
		t.Fatal("handler was called")
	}
	// The connection survived and serves a real request.
	typ, _, err := cl.request(batchFrame(msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)))
	if err != nil || typ != frameAck {
		t.Fatalf("request after the resets: %d %v", typ, err)
	}
}

// decodedBytes is what decoding body allocates. TotalAlloc counts every
// goroutine's allocations, and goroutines an earlier test left winding down
// (a QUIC connection's closing timers) allocate too, so the figure is the
// least of several decodes: what the decode itself allocates is the same
// each time, the others' allocations only ever add to it.
func decodedBytes(t *testing.T, body []byte) (int64, error) {
	t.Helper()
	least := int64(-1)
	var err error
	for range 5 {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		_, err = decodeBatch(body)
		runtime.ReadMemStats(&m1)
		if got := int64(m1.TotalAlloc - m0.TotalAlloc); least < 0 || got < least {
			least = got
		}
	}
	return least, err
}

// minimalBatch is the body of a batch of n near-minimal messages (id "x",
// seq 1, the rest empty or zero: 8 bytes each) or receipts (6 bytes each),
// built by hand because the sender refuses such batches.
func minimalBatch(kind BatchKind, n int) []byte {
	body := appendBatch(nil, &Batch{Kind: kind, From: "alpha", To: "bravo", Precedence: queue.Routine})
	body = body[:len(body)-2] // drop the two empty counts
	item := []byte{1, 'x', 1, 0, 0, 0, 0, 0}
	if kind == BatchReceipts {
		body = append(body, 0) // no messages
		item = []byte{1, 0, 1, 1, 'x', 0}
	}
	body = binary.AppendUvarint(body, uint64(n))
	for range n {
		body = append(body, item...)
	}
	if kind == BatchMessages {
		body = append(body, 0) // no receipts
	}
	return body
}

// A frame's decoded size is bounded: counts above MaxBatchItems are refused
// before anything is allocated, and what is accepted decodes into at most
// the frame's size plus MaxBatchItems structs.
func TestDecodeAllocationBounded(t *testing.T) {
	msgSize, rcptSize := int64(unsafe.Sizeof(queue.Message{})), int64(unsafe.Sizeof(queue.Receipt{}))

	// Before the fix a 7 MiB frame of minimal messages decoded into 128 MiB.
	n := (7<<20 - 16) / 8
	huge := minimalBatch(BatchMessages, n)
	got, err := decodedBytes(t, huge)
	if _, ok := asViolation(err); !ok || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("7 MiB of minimal messages: %v", err)
	}
	t.Logf("7 MiB frame of %d minimal messages: refused, %d bytes allocated", n, got)
	if got > 4096 {
		t.Errorf("refusing it allocated %d bytes", got)
	}

	cases := []struct {
		name string
		body []byte
	}{
		{"MaxBatchItems minimal messages", minimalBatch(BatchMessages, MaxBatchItems)},
		{"MaxBatchItems minimal receipts", minimalBatch(BatchReceipts, MaxBatchItems)},
		{"MaxBatchItems messages with long ids and keys", appendBatch(nil, longIDBatch())},
	}
	for _, c := range cases {
		items := int64(MaxBatchItems)
		bound := 2*int64(len(c.body)) + items*max(msgSize, rcptSize) + 64<<10
		got, err := decodedBytes(t, c.body)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Logf("%s: frame %d bytes, decoded %d bytes (%.1f per frame byte; bound %d)", c.name, len(c.body), got, float64(got)/float64(len(c.body)), bound)
		if got > bound {
			t.Errorf("%s: decoded %d bytes, over %d", c.name, got, bound)
		}
	}
}

func longIDBatch() *Batch {
	b := msgBatch("alpha", "bravo", queue.Routine, 1, MaxBatchItems, 0)
	for i := range b.Messages {
		m := &b.Messages[i]
		m.ID = strings.Repeat("i", queue.MaxIDLen-8) + m.ID[:min(len(m.ID), 8)]
		m.Key = strings.Repeat("k", queue.MaxKeyLen)
	}
	return b
}
