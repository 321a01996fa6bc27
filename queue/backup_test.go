package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backupBytes takes a backup of s as a file's bytes.
func backupBytes(t testing.TB, s *Store) ([]byte, BackupHeader) {
	t.Helper()
	b, err := s.Backup("alpha-2", time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != b.Size() || int64(buf.Len()) != n {
		t.Fatalf("wrote %d bytes (buffer %d), Size says %d", n, buf.Len(), b.Size())
	}
	return buf.Bytes(), b.Header
}

// restoreFrom writes data to a file and restores a store of site from it.
func restoreFrom(t testing.TB, data []byte, site string, remotes ...string) (*Store, string, error) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "backup")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node", "state.db")
	if _, err := RestoreBackup(file, path, site, remotes); err != nil {
		return nil, path, err
	}
	s, err := Open(path, site, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path, nil
}

func TestBackupRoundTrip(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Flash, "one"), item("m2", "bravo", Routine, "two")))
	l.apply(t, s, receiveCmd(t2, "bravo", Priority, Message{ID: "n1", Origin: "bravo", Dest: "alpha", Precedence: Priority, Seq: 1, Payload: []byte("in")}))
	data, h := backupBytes(t, s)
	if h.Format != BackupFormat || h.Site != "alpha" || h.Node != "alpha-2" || h.Applied != 2 || h.Length <= 0 {
		t.Fatalf("header = %+v", h)
	}
	var content bytes.Buffer
	got, err := ReadBackup(bytes.NewReader(data), &content)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data[:len(data)-trailerLen])
	if got.Sum != hex.EncodeToString(sum[:]) {
		t.Fatalf("ReadBackup's Sum %q, the file's %x", got.Sum, sum)
	}
	got.Sum = ""
	if got != h || int64(content.Len()) != h.Length {
		t.Fatalf("read header %+v (%d content bytes), wrote %+v", got, content.Len(), h)
	}
	oldPos := s.InboxLast()

	r, path, err := restoreFrom(t, data, "alpha", "bravo")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file: %v %v", fi.Mode(), err)
	}
	if r.AppliedIndex() != 0 {
		t.Fatalf("restored applied index %d, want 0 (a new Raft log)", r.AppliedIndex())
	}
	if st := mustStatus(t, r, "m2"); st.State != Queued || string(st.Message.Payload) != "two" {
		t.Fatalf("m2 = %+v", st)
	}
	items, err := r.Inbox(0, 10)
	if err != nil || len(items) != 1 || items[0].Message.ID != "n1" {
		t.Fatalf("inbox = %+v, %v", items, err)
	}
	// A new arrival gets a position far above any handed out before.
	var lr cmdLog
	lr.apply(t, r, receiveCmd(t3, "bravo", Priority, Message{ID: "n2", Origin: "bravo", Dest: "alpha", Precedence: Priority, Seq: 2, Payload: []byte("in2")}))
	if items, _ := r.Inbox(items[0].Pos, 10); len(items) != 1 || items[0].Pos <= oldPos+1<<39 {
		t.Fatalf("new inbox item %+v: position not above %d + the restore gap", items, oldPos)
	}
	f := r.Fenced()
	if f == nil || len(f.Out) != len(Precedences) || len(f.Receipts) != 1 || f.Receipts[0] != "bravo" {
		t.Fatalf("fences = %+v", f)
	}
}

func TestBackupRefusesDamage(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Flash, strings.Repeat("x", 5000))))
	data, h := backupBytes(t, s)
	prefix := len(data) - int(h.Length) - trailerLen

	alter := func(i int) []byte {
		d := bytes.Clone(data)
		d[i] ^= 0x20
		return d
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "does not start with"},
		{"not a backup", []byte("SQLite format 3\x00 and more"), "does not start with"},
		{"cut in the header", data[:len(backupMagic)+10], "header: truncated"},
		{"cut in the state", data[:prefix+100], "truncated: the state ends after 100 of"},
		{"cut before the trailer", data[:prefix+int(h.Length)], "truncated: the checksum trailer has 0 of"},
		{"cut in the trailer", data[:len(data)-5], "truncated: the checksum trailer"},
		{"altered state", alter(prefix + 4096 + 100), "checksum mismatch"},
		{"altered header", alter(bytes.Index(data, []byte(`"node":"alpha-2"`)) + 9), "checksum mismatch"},
		{"altered trailer", alter(len(data) - 3), "checksum mismatch"},
		{"data after the trailer", append(bytes.Clone(data), "junk"...), "bytes or more after the checksum trailer"},
		{"other format", bytes.Replace(data, []byte(`"format":1`), []byte(`"format":9`), 1), "format 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadBackup(bytes.NewReader(c.data), &bytes.Buffer{})
			if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ReadBackup: %v, want ErrBadBackup with %q", err, c.want)
			}
			_, path, err := restoreFrom(t, c.data, "alpha", "bravo")
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("RestoreBackup: %v, want ErrBadBackup", err)
			}
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 0 {
				t.Fatalf("a refused restore left %v behind", ents)
			}
		})
	}

	if _, _, err := restoreFrom(t, data, "bravo", "alpha"); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), `backup of site "alpha", this node is of site "bravo"`) {
		t.Fatalf("restore of another site's backup: %v", err)
	}
	dir := t.TempDir()
	file, path := filepath.Join(dir, "b"), filepath.Join(dir, "state.db")
	os.WriteFile(file, data, 0o600)
	os.WriteFile(path, []byte("old"), 0o600)
	if _, err := RestoreBackup(file, path, "alpha", []string{"bravo"}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("restore over an existing state: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("the existing state was changed")
	}
}

// TestRestoreResync plays a site restored from a backup against the other
// site, both as queue states, the way the forwarders drive them: nothing
// acknowledged before the backup is lost or doubled, the destination never
// drops a new message as a duplicate, and the receipt streams go on.
func TestRestoreResync(t *testing.T) {
	alpha, _ := openStore(t, "alpha")
	bravo, _ := openStore(t, "bravo")
	var la, lb cmdLog
	forward := func(from, to *Store, lf, lt *cmdLog, dest, origin string, after uint64) (applied int, last uint64) {
		t.Helper()
		msgs, err := from.Resend(dest, Priority, after, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		res := lt.apply(t, to, receiveCmd(t2, origin, Priority, msgs...))
		lf.apply(t, from, deliveredCmd(t2, dest, Priority, res[0].Receive.Last))
		return res[0].Receive.Applied, res[0].Receive.Last
	}
	bmsg := func(seq uint64, id string) Message {
		return Message{ID: id, Origin: "bravo", Dest: "alpha", Precedence: Priority, Seq: seq, Payload: []byte(id), SubmittedAt: t1}
	}

	// Before the backup: m1..m3 delivered to bravo, m4 and m5 queued;
	// bravo's n1, n2 arrived; alpha read n1 (receipt 1 queued); bravo
	// read m1 and alpha applied that receipt.
	la.apply(t, alpha, submitCmd(t1, item("m1", "bravo", Priority, "1"), item("m2", "bravo", Priority, "2"), item("m3", "bravo", Priority, "3")))
	forward(alpha, bravo, &la, &lb, "bravo", "alpha", 0)
	la.apply(t, alpha, submitCmd(t1, item("m4", "bravo", Priority, "4"), item("m5", "bravo", Priority, "5")))
	lb.apply(t, bravo, submitFrom("bravo", t1, item("n1", "alpha", Priority, "n1"), item("n2", "alpha", Priority, "n2"),
		item("n3", "alpha", Priority, "n3"), item("n4", "alpha", Priority, "n4")))
	la.apply(t, alpha, receiveCmd(t2, "bravo", Priority, bmsg(1, "n1"), bmsg(2, "n2")))
	lb.apply(t, bravo, deliveredCmd(t2, "alpha", Priority, 2))
	la.apply(t, alpha, markReadCmd(t3, "n1"))
	lb.apply(t, bravo, markReadCmd(t3, "m1"))
	rcs, _ := bravo.PendingReceipts("alpha", 0, 10)
	la.apply(t, alpha, receiptsCmd(t3, "bravo", rcs...))
	lb.apply(t, bravo, receiptsAckedCmd(t3, "alpha", 1))

	data, _ := backupBytes(t, alpha)

	// After the backup, before the loss: m6, m7 submitted and delivered
	// with m4, m5 (bravo's last is 7); n3, n4 arrived; alpha read n2
	// and bravo got receipts 1 and 2; bravo read m2 and alpha applied it.
	la.apply(t, alpha, submitCmd(t1, item("m6", "bravo", Priority, "6"), item("m7", "bravo", Priority, "7")))
	if _, last := forward(alpha, bravo, &la, &lb, "bravo", "alpha", 3); last != 7 {
		t.Fatalf("bravo's last = %d", last)
	}
	la.apply(t, alpha, receiveCmd(t2, "bravo", Priority, bmsg(3, "n3"), bmsg(4, "n4")))
	lb.apply(t, bravo, deliveredCmd(t2, "alpha", Priority, 4))
	la.apply(t, alpha, markReadCmd(t3, "n2"))
	rcs, _ = alpha.PendingReceipts("bravo", 0, 10)
	res := lb.apply(t, bravo, receiptsCmd(t3, "alpha", rcs...))
	if res[0].Receipts.Last != 2 {
		t.Fatalf("bravo's receipts from alpha: last %d", res[0].Receipts.Last)
	}
	lb.apply(t, bravo, markReadCmd(t3, "m2"))
	rcs, _ = bravo.PendingReceipts("alpha", 1, 10)
	la.apply(t, alpha, receiptsCmd(t3, "bravo", rcs...))
	lb.apply(t, bravo, receiptsAckedCmd(t3, "alpha", 2))

	// Alpha is lost and restored from the backup.
	r, _, err := restoreFrom(t, data, "alpha", "bravo")
	if err != nil {
		t.Fatal(err)
	}
	var lr cmdLog

	// The hazard the fence prevents: a new message would take seq 6,
	// which bravo already has, and be dropped as a duplicate.
	if res := lb.apply(t, bravo, receiveCmd(t4, "alpha", Priority, Message{ID: "x", Origin: "alpha", Dest: "bravo", Precedence: Priority, Seq: 6, Payload: []byte("x")})); res[0].Receive.Applied != 0 {
		t.Fatalf("bravo applied a message at a sequence it has")
	}
	// So the restored site refuses to number one until resynchronised.
	out := r.Apply(lr.add(t, submitCmd(t4, item("m8", "bravo", Priority, "8")))) // via Apply to see the Err
	if e := out[0].Submit[0].Err; !strings.HasPrefix(e, ErrResyncing.Error()) {
		t.Fatalf("submit before resync: %q", e)
	}
	// A retried submit of a message the backup holds is answered as before.
	if out := r.Apply(lr.add(t, submitCmd(t4, item("m5", "bravo", Priority, "5")))); !out[0].Submit[0].Existing {
		t.Fatalf("resubmit of m5: %+v", out[0].Submit[0])
	}

	// The forwarder asks bravo (an empty batch) and commits the answer.
	probe := lb.apply(t, bravo, receiveCmd(t4, "alpha", Priority))
	lr.apply(t, r, deliveredCmd(t4, "bravo", Priority, probe[0].Receive.Last))
	if r.OutFenced("bravo", Priority) {
		t.Fatal("still fenced after the resync")
	}
	if st := mustStatus(t, r, "m5"); st.State != Delivered {
		t.Fatalf("m5 (delivered after the backup) = %v", st.State)
	}
	got := lr.apply(t, r, submitCmd(t4, item("m8", "bravo", Priority, "8")))
	if seq := got[0].Submit[0].Seq; seq != 8 {
		t.Fatalf("m8 got seq %d, want 8 (after bravo's 7)", seq)
	}
	if applied, last := forward(r, bravo, &lr, &lb, "bravo", "alpha", 7); applied != 1 || last != 8 {
		t.Fatalf("bravo applied %d (last %d) of m8", applied, last)
	}
	if st := mustStatus(t, bravo, "m8"); st.State != Delivered || st.Message.Seq != 8 {
		t.Fatalf("bravo m8 = %+v", st)
	}

	// Bravo → alpha: alpha acknowledges 2 where it had acknowledged 4;
	// bravo resends n3, n4 from what it keeps.
	if applied, last := forward(bravo, r, &lb, &lr, "alpha", "bravo", 4); applied != 0 || last != 2 {
		t.Fatalf("restored alpha applied %d, last %d; want 0 and 2 (it lost n3, n4)", applied, last)
	}
	if applied, last := forward(bravo, r, &lb, &lr, "alpha", "bravo", 2); applied != 2 || last != 4 {
		t.Fatalf("resend: applied %d, last %d", applied, last)
	}
	// Receipts alpha owes: receipt 1 (n1, in the backup) bravo has; n3
	// read after the restore takes number 2, which bravo also has (n2):
	// the resync drops 1 and renumbers n3's to 3.
	lr.apply(t, r, markReadCmd(t4, "n3"))
	probe = lb.apply(t, bravo, receiptsCmd(t4, "alpha"))
	lr.apply(t, r, receiptsAckedCmd(t4, "bravo", probe[0].Receipts.Last))
	rcs, _ = r.PendingReceipts("bravo", 2, 10)
	if len(rcs) != 1 || rcs[0].RSeq != 3 || rcs[0].ID != "n3" {
		t.Fatalf("receipts after resync: %+v", rcs)
	}
	if res := lb.apply(t, bravo, receiptsCmd(t4, "alpha", rcs...)); res[0].Receipts.Last != 3 {
		t.Fatalf("bravo took receipts up to %d", res[0].Receipts.Last)
	}
	if st := mustStatus(t, bravo, "n3"); st.State != Read {
		t.Fatalf("bravo's n3 = %v, want read", st.State)
	}
	// Receipts bravo owes: alpha had applied 1 and 2 (m2's, lost); bravo
	// dropped them, so its next batch starts at 3 and alpha takes it.
	lb.apply(t, bravo, markReadCmd(t4, "m3"))
	rcs, _ = bravo.PendingReceipts("alpha", 2, 10)
	if res := lr.apply(t, r, receiptsCmd(t4, "bravo", rcs...)); res[0].Receipts.Last != 3 {
		t.Fatalf("restored alpha took bravo's receipts up to %d, want 3", res[0].Receipts.Last)
	}
	if st := mustStatus(t, r, "m3"); st.State != Read {
		t.Fatalf("alpha's m3 = %v, want read", st.State)
	}
	if f := r.Fenced(); f == nil || len(f.Out) != len(Precedences)-1 {
		t.Fatalf("fences left = %+v (the other precedences wait for their forwarders)", f)
	}
}

// TestResendAfterPurge: messages the destination lost but the origin
// already purged are resent as tombstones, so the destination's sequence
// goes on.
func TestResendAfterPurge(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Priority, "1"), item("m2", "bravo", Priority, "2"), item("m3", "bravo", Priority, "3")))
	l.apply(t, s, deliveredCmd(t2, "bravo", Priority, 2))
	l.apply(t, s, purgeCmd(t4, t3, 0))
	if _, err := s.Lookup("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("m1 not purged: %v", err)
	}
	msgs, err := s.Resend("bravo", Priority, 0, 100, 1<<20)
	if err != nil || len(msgs) != 2 || msgs[0].ID != "purged-1" || !msgs[1].Tombstone() || msgs[1].Seq != 2 {
		t.Fatalf("Resend(0) = %+v, %v", msgs, err)
	}
	if msgs, _ := s.Resend("bravo", Priority, 2, 100, 1<<20); len(msgs) != 1 || msgs[0].ID != "m3" {
		t.Fatalf("Resend(2) = %+v", msgs)
	}
	if msgs, _ := s.Resend("bravo", Priority, 3, 100, 1<<20); len(msgs) != 0 {
		t.Fatalf("Resend(3) = %+v", msgs)
	}
	b, _ := openStore(t, "bravo")
	var lb cmdLog
	all, _ := s.Resend("bravo", Priority, 0, 100, 1<<20)
	if res := lb.apply(t, b, receiveCmd(t4, "alpha", Priority, all...)); res[0].Receive.Last != 2 {
		t.Fatalf("tombstones applied up to %d", res[0].Receive.Last)
	}
}

// FuzzReadBackup: any bytes give a header and nil, or an error; never a
// panic, and never more content than the header announced.
func FuzzReadBackup(f *testing.F) {
	s, err := Open(filepath.Join(f.TempDir(), "state.db"), "alpha", Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	var l cmdLog
	res := s.Apply(l.add(f, submitCmd(t1, item("m1", "bravo", Flash, "one"))))
	if res[0].Err != "" {
		f.Fatal(res[0].Err)
	}
	data, h := backupBytes(f, s)
	f.Add(data)
	f.Add(data[:len(data)-int(h.Length)-trailerLen+10])
	f.Add([]byte(backupMagic + `{"format":1,"site":"a","length":3}` + "\nabcsha256 00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		h, err := ReadBackup(bytes.NewReader(b), &out)
		if err == nil && int64(out.Len()) != h.Length {
			t.Fatalf("accepted with %d content bytes, header says %d", out.Len(), h.Length)
		}
		if int64(out.Len()) > int64(len(b)) {
			t.Fatalf("more content than input")
		}
	})
}

// BenchmarkBackup writes a backup of a state holding 20,000 messages of
// 1 KiB to a file and verifies it (ReadBackup), as backup and restore do.
func BenchmarkBackup(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "state.db"), "alpha", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var l cmdLog
	payload := strings.Repeat("x", 1024)
	for i := range 20 {
		var items []SubmitItem
		for j := range 1000 {
			items = append(items, item(fmt.Sprintf("m%d-%d", i, j), "bravo", Routine, payload))
		}
		s.Apply(l.add(b, submitCmd(t1, items...)))
	}
	file := filepath.Join(b.TempDir(), "backup")
	b.ResetTimer()
	for range b.N {
		bk, err := s.Backup("alpha-1", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(file)
		n, err := bk.WriteTo(f)
		bk.Release()
		if err != nil {
			b.Fatal(err)
		}
		f.Sync()
		f.Seek(0, 0)
		if _, err := ReadBackup(f, io.Discard); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.SetBytes(n)
	}
}
