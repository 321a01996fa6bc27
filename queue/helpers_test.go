package queue

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Times used by the tests (Unix nanoseconds; any values work).
const (
	t0 int64 = 1_700_000_000_000_000_000
	t1       = t0 + 1e9
	t2       = t0 + 2e9
	t3       = t0 + 3e9
	t4       = t0 + 4e9
)

// openStore opens a store in a fresh directory and closes it at cleanup.
func openStore(t testing.TB, site string) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, site, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

// cmdLog numbers commands into entries, like a Raft log.
type cmdLog struct {
	next    uint64
	entries []Entry
}

func (l *cmdLog) add(t testing.TB, cmds ...Command) []Entry {
	t.Helper()
	var out []Entry
	for i := range cmds {
		data, err := cmds[i].Encode()
		if err != nil {
			t.Fatal(err)
		}
		l.next++
		e := Entry{Index: l.next, Data: data}
		l.entries = append(l.entries, e)
		out = append(out, e)
	}
	return out
}

// apply appends the commands to l, applies them to s and fails the test
// on a Result.Err.
func (l *cmdLog) apply(t testing.TB, s *Store, cmds ...Command) []Result {
	t.Helper()
	res := s.Apply(l.add(t, cmds...))
	for i, r := range res {
		if r.Err != "" {
			t.Fatalf("command %d (%s): %s", i, cmds[i].Op, r.Err)
		}
	}
	return res
}

func submitCmd(now int64, items ...SubmitItem) Command { return submitFrom("alpha", now, items...) }

func submitFrom(origin string, now int64, items ...SubmitItem) Command {
	return Command{Op: OpSubmit, Time: now, Submit: &Submit{Origin: origin, Items: items}}
}

func item(id, dest string, p Precedence, payload string) SubmitItem {
	return SubmitItem{ID: id, Dest: dest, Precedence: p, Payload: []byte(payload)}
}

func deliveredCmd(now int64, dest string, p Precedence, upTo uint64) Command {
	return Command{Op: OpDelivered, Time: now, Delivered: &DeliveredCmd{Dest: dest, Precedence: p, UpTo: upTo}}
}

func receiveCmd(now int64, origin string, p Precedence, msgs ...Message) Command {
	return Command{Op: OpReceive, Time: now, Receive: &Receive{Origin: origin, Precedence: p, Messages: msgs}}
}

func markReadCmd(now int64, ids ...string) Command {
	return Command{Op: OpMarkRead, Time: now, MarkRead: &MarkRead{IDs: ids}}
}

func receiptsCmd(now int64, from string, rcs ...Receipt) Command {
	return Command{Op: OpReceipts, Time: now, Receipts: &Receipts{From: from, Receipts: rcs}}
}

func receiptsAckedCmd(now int64, origin string, upTo uint64) Command {
	return Command{Op: OpReceiptsAcked, Time: now, ReceiptsAcked: &ReceiptsAcked{Origin: origin, UpTo: upTo}}
}

func expireCmd(now int64) Command { return Command{Op: OpExpire, Time: now} }

func purgeCmd(now, before int64, max int) Command {
	return Command{Op: OpPurge, Time: now, Purge: &Purge{Before: before, Max: max}}
}

// inMsg is message seq of channel (origin -> bravo, p).
func inMsg(origin string, p Precedence, seq uint64, id, payload string) Message {
	return Message{ID: id, Origin: origin, Dest: "bravo", Precedence: p, Seq: seq, Payload: []byte(payload), SubmittedAt: t0}
}

// specialBatch is a batch of channel (alpha -> bravo, Routine) holding,
// besides m1 and m5, the three kinds of message that never enter the
// inbox: a tombstone (t2), a link test (l3) and a drill (d4).
func specialBatch() []Message {
	tomb := Message{ID: "t2", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 2, Flags: FlagTombstone, SubmittedAt: t0}
	link := inMsg("alpha", Routine, 3, "l3", "ping")
	link.Flags = FlagLinkTest
	drill := inMsg("alpha", Routine, 4, "d4", "canary")
	drill.Flags = FlagDrill
	return []Message{inMsg("alpha", Routine, 1, "m1", "one"), tomb, link, drill, inMsg("alpha", Routine, 5, "m5", "five")}
}

// inboxPositions returns the inbox positions of items, in order.
func inboxPositions(items []InboxItem) []uint64 {
	var out []uint64
	for _, it := range items {
		out = append(out, it.Pos)
	}
	return out
}

func mustStatus(t testing.TB, s *Store, id string) *Status {
	t.Helper()
	st, err := s.Lookup(id)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", id, err)
	}
	return st
}

// rawDump returns every key and value of the database, nested buckets
// included, in order: the state that must be identical on every node.
func rawDump(t testing.TB, s *Store) []string {
	t.Helper()
	var out []string
	err := s.view(func(tx *bolt.Tx) (err error) {
		out, err = dumpTx(tx)
		return err
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}

// dumpTx lists every bucket, key and value of tx's database.
func dumpTx(tx *bolt.Tx) ([]string, error) {
	var out []string
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			name := prefix + "/" + hex.EncodeToString(k)
			if v == nil {
				out = append(out, name+"/")
				return walk(name, b.Bucket(k))
			}
			out = append(out, name+"="+hex.EncodeToString(v))
			return nil
		})
	}
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		out = append(out, string(name)+"/")
		return walk(string(name), b)
	})
	return out, err
}

// view is everything the store's read API shows.
type view struct {
	Applied  uint64
	Out      []OutChannel
	In       []InChannel
	Pending  map[string][]Message
	Inbox    []InboxItem
	Unread   int
	Queues   []ReceiptQueue
	Receipts map[string][]Receipt
	Status   map[string]*Status
	Keys     map[string]*Status
}

// readView reads the whole observable state, looking up every message ID
// and key it can find.
func readView(t testing.TB, s *Store) view {
	t.Helper()
	v := view{
		Applied: s.AppliedIndex(), Out: s.Outbound(), In: s.Inbound(), Unread: s.InboxUnread(),
		Queues: s.ReceiptQueues(), Pending: map[string][]Message{}, Receipts: map[string][]Receipt{},
		Status: map[string]*Status{}, Keys: map[string]*Status{},
	}
	var ids, keys []string
	for _, oc := range v.Out {
		msgs, err := s.Pending(oc.Dest, oc.Precedence, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.Pending[fmt.Sprint(oc.Dest, "/", oc.Precedence)] = msgs
		for _, m := range msgs {
			ids = append(ids, m.ID)
			if m.Key != "" {
				keys = append(keys, m.Key)
			}
		}
	}
	var err error
	if v.Inbox, err = s.Inbox(0, 0); err != nil {
		t.Fatal(err)
	}
	for _, q := range v.Queues {
		rcs, err := s.PendingReceipts(q.Origin, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.Receipts[q.Origin] = rcs
		for _, rc := range rcs {
			ids = append(ids, rc.ID)
		}
	}
	for _, it := range v.Inbox {
		ids = append(ids, it.Message.ID)
	}
	// Pending stops at the first purged message: list the indexes too.
	_ = s.view(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketInIDs, bucketOutIDs} {
			_ = tx.Bucket(b).ForEach(func(k, _ []byte) error {
				ids = append(ids, string(k))
				return nil
			})
		}
		return tx.Bucket(bucketOutKeys).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	sort.Strings(ids)
	for _, id := range ids {
		st, err := s.Lookup(id)
		if err != nil && !errors.Is(err, ErrNotFound) { // receipts outlive purged messages
			t.Fatalf("Lookup(%q): %v", id, err)
		}
		v.Status[id] = st
	}
	for _, k := range keys {
		st, err := s.LookupKey(k)
		if err != nil {
			t.Fatal(err)
		}
		v.Keys[k] = st
	}
	return v
}

func assertSameView(t testing.TB, want, got view) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("views differ:\nwant %+v\n got %+v", want, got)
	}
}

func assertSameRaw(t testing.TB, want, got []string) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("raw state differs: %d vs %d keys", len(want), len(got))
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("raw state differs at %d:\nwant %s\n got %s", i, want[i], got[i])
		}
	}
}

func payloads(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Payload))
	}
	return out
}

func seqs(msgs []Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func countKeys(t testing.TB, s *Store, bucket []byte) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// plain returns a decoded command without the format it was decoded from,
// to compare with a command built in memory.
func plain(c *Command) Command {
	p := *c
	p.format = 0
	return p
}
