package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crypto/rand"

	"github.com/hotline-link/hotline/daemon/client"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: backlog submit|drain [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "submit":
		err = submit(ctx, os.Args[2:])
	case "drain":
		err = drain(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (submit or drain)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backlog:", err)
		os.Exit(1)
	}
}

// keyPrefix is the idempotency key of a run's messages, before the index.
func keyPrefix(run []byte) string { return "backlog-" + hex.EncodeToString(run) + "-" }

// The state file: the 8-byte run id, then the origin's sequence number of
// each message by index (0: its submit failed), big-endian.
func writeState(path string, run []byte, seqs []uint64) error {
	b := make([]byte, 8+8*len(seqs))
	copy(b, run)
	for i, s := range seqs {
		binary.BigEndian.PutUint64(b[8+8*i:], s)
	}
	return os.WriteFile(path, b, 0o600)
}

func readState(path string) (run []byte, seqs []uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 8 || len(b)%8 != 0 {
		return nil, nil, fmt.Errorf("%s: not a backlog state file", path)
	}
	seqs = make([]uint64, len(b)/8-1)
	for i := range seqs {
		seqs[i] = binary.BigEndian.Uint64(b[8+8*i:])
	}
	return b[:8], seqs, nil
}

func submit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ExitOnError)
	socket := fs.String("socket", "", "the submitting daemon's socket")
	to := fs.String("to", "bravo", "destination site")
	n := fs.Int("n", 1_000_000, "messages")
	size := fs.Int("size", 512, "payload bytes")
	conc := fs.Int("concurrency", 64, "concurrent submitters")
	timeout := fs.Duration("timeout", 2*time.Minute, "per submit, with its retries")
	state := fs.String("state", "", "file to write the run's id and sequence numbers to")
	_ = fs.Parse(args)
	if *socket == "" || *state == "" || *n < 1 || *conc < 1 || *size < 1 {
		return errors.New("submit: --socket, --state, --n, --concurrency and --size are required and positive")
	}
	run := make([]byte, 8)
	if _, err := rand.Read(run); err != nil {
		return err
	}
	prefix := keyPrefix(run)
	payload := make([]byte, *size)
	for k := range payload {
		payload[k] = 'a' + byte(k%26)
	}
	c := client.New(*socket)
	defer c.CloseIdleConnections()
	seqs := make([]uint64, *n)
	var next, done, failed atomic.Int64
	var firstErr sync.Once
	start := time.Now()
	stopProgress := progress(func() string {
		return fmt.Sprintf("submitted %d/%d (failed %d)", done.Load(), *n, failed.Load())
	})
	var wg sync.WaitGroup
	for range *conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				seq, err := submitOne(ctx, c, client.SubmitRequest{To: *to, Key: prefix + strconv.Itoa(i), Payload: payload}, *timeout)
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { fmt.Fprintf(os.Stderr, "backlog: submit %d: %v\n", i, err) })
				}
				seqs[i] = seq
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	if err := writeState(*state, run, seqs); err != nil {
		return err
	}
	ok := done.Load() - failed.Load()
	return printJSON(map[string]any{
		"run": hex.EncodeToString(run), "n": *n, "size": *size, "concurrency": *conc,
		"submitted": ok, "failed_submits": failed.Load(), "submit_s": round(elapsed.Seconds()),
		"submit_msgs_per_sec": round(float64(ok) / elapsed.Seconds()),
		"interrupted":         ctx.Err() != nil,
	})
}

// submitOne submits req, retrying retryable errors with its key for up to
// timeout, and returns the message's sequence number.
func submitOne(ctx context.Context, c *client.Client, req client.SubmitRequest, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		m, err := c.Submit(ctx, req)
		if err == nil {
			return m.Seq, nil
		}
		if !client.Retryable(err) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// channel is the order check of one channel (origin and precedence).
type channel struct {
	last uint64 // highest sequence number seen
}

func drain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drain", flag.ExitOnError)
	socket := fs.String("socket", "", "a daemon of the destination site")
	state := fs.String("state", "", "the file submit wrote")
	since := fs.Int64("since", 0, "Unix milliseconds the paths came back (the drain's start)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long without a new arrival")
	noAck := fs.Bool("no-ack", false, "do not acknowledge (mark read) what arrives")
	_ = fs.Parse(args)
	if *socket == "" || *state == "" {
		return errors.New("drain: --socket and --state are required")
	}
	run, seqs, err := readState(*state)
	if err != nil {
		return err
	}
	prefix := keyPrefix(run)
	// want counts the messages whose submit was acknowledged (a sequence
	// number in the state file); got counts those of them received. A
	// message whose submit failed may still have been committed and
	// arrive: it counts in received, never toward want.
	want := 0
	for _, s := range seqs {
		if s != 0 {
			want++
		}
	}
	begin := time.Now()
	if *since > 0 {
		begin = time.UnixMilli(*since)
	}
	c := client.New(*socket)
	defer c.CloseIdleConnections()
	var (
		copies                = make([]uint8, len(seqs))
		chans                 = map[string]*channel{}
		distinct, got         int
		dups, misseq          int
		outOfOrder, unknown   int
		lastArrival, lastRecv time.Time
		firstArrival          time.Time
		after                 uint64
		lastNew               = time.Now()
		mu                    sync.Mutex
	)
	stopProgress := progress(func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("received %d/%d (and %d whose submit failed; duplicated %d, out of order %d)", got, want, distinct-got, dups, outOfOrder)
	})
	defer stopProgress()
	// take counts one inbox read's messages and acknowledges this run's.
	take := func(in *client.Inbox) {
		now := time.Now()
		var ids []string
		mu.Lock()
		for k := range in.Messages {
			m := &in.Messages[k]
			after = max(after, m.Pos)
			if !strings.HasPrefix(m.Key, prefix) {
				continue
			}
			i, err := strconv.Atoi(m.Key[len(prefix):])
			if err != nil || i < 0 || i >= len(seqs) {
				unknown++
				continue
			}
			ids = append(ids, m.ID)
			ch := chans[m.From+"/"+m.Precedence]
			if ch == nil {
				ch = &channel{}
				chans[m.From+"/"+m.Precedence] = ch
			}
			if copies[i] < 255 {
				copies[i]++
			}
			if copies[i] > 1 {
				dups++
				continue
			}
			distinct++
			if seqs[i] != 0 {
				got++
			}
			lastNew = now
			if firstArrival.IsZero() {
				firstArrival = now
			}
			lastArrival = now
			if m.ReceivedAt.After(lastRecv) {
				lastRecv = m.ReceivedAt
			}
			if seqs[i] != 0 && m.Seq != seqs[i] {
				misseq++
			}
			if m.Seq <= ch.last {
				outOfOrder++
			}
			ch.last = max(ch.last, m.Seq)
		}
		mu.Unlock()
		after = max(after, in.Next)
		if len(ids) > 0 && !*noAck {
			if _, err := c.Ack(ctx, ids); err != nil {
				fmt.Fprintf(os.Stderr, "backlog: ack %d messages: %v\n", len(ids), err)
			}
		}
	}
	const page = 1000
	delay := 100 * time.Millisecond
	for got < want && time.Since(lastNew) < *timeout && ctx.Err() == nil {
		in, err := c.Inbox(ctx, after, page, time.Second)
		if err != nil {
			if !client.Retryable(err) {
				return fmt.Errorf("read inbox: %w", err)
			}
			fmt.Fprintf(os.Stderr, "backlog: read inbox: %v (retrying)\n", err)
			time.Sleep(delay)
			delay = min(2*delay, 2*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		take(in)
	}
	// Then what is already there, without waiting, so that copies that
	// came after the last expected message (late duplicates, messages
	// whose submit failed) are counted too: page by page until a read
	// returns nothing (max_bytes can cut a page short with more to come),
	// for at most --timeout.
	for end := time.Now().Add(*timeout); ctx.Err() == nil && time.Now().Before(end); {
		in, err := c.Inbox(ctx, after, page, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "backlog: last read of the inbox: %v\n", err)
			break
		}
		take(in)
		if len(in.Messages) == 0 {
			break
		}
	}
	lost := 0
	for i, s := range seqs {
		if s != 0 && copies[i] == 0 {
			lost++
		}
	}
	out := map[string]any{
		"run": hex.EncodeToString(run), "expected": want, "received": distinct, "received_expected": got,
		"lost": lost, "duplicated": dups, "out_of_order": outOfOrder, "wrong_seq": misseq, "unknown": unknown,
		"channels": len(chans), "interrupted": ctx.Err() != nil,
	}
	if !lastArrival.IsZero() {
		// The drain: from the paths' return to the last message's
		// ReceivedAt (the destination's clock, the same host); the read:
		// to the reader seeing it.
		d := lastRecv.Sub(begin).Seconds()
		out["drain_s"] = round(d)
		out["drain_msgs_per_sec"] = round(float64(distinct) / d)
		out["first_arrival_after_s"] = round(firstArrival.Sub(begin).Seconds())
		out["read_s"] = round(lastArrival.Sub(begin).Seconds())
	}
	if err := printJSON(out); err != nil {
		return err
	}
	if lost > 0 || dups > 0 || outOfOrder > 0 || misseq > 0 {
		return fmt.Errorf("drain: %d lost, %d duplicated, %d out of order, %d at another sequence number", lost, dups, outOfOrder, misseq)
	}
	return nil
}

// progress writes line() to stderr every second until the returned func
// is called.
func progress(line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintln(os.Stderr, "backlog:", line())
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func printJSON(v any) error {
	e := json.NewEncoder(os.Stdout)
	return e.Encode(v)
}
