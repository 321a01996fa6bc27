package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// dumpFile lists every bucket, key and value of the closed bbolt file at
// path (dumpTx), opened read-only.
func dumpFile(t testing.TB, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	if err := db.View(func(tx *bolt.Tx) (err error) { out, err = dumpTx(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

// logTo returns a logger writing text to buf.
func logTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

// reportEveryBatch makes the upgrade report its progress after every
// transaction for the rest of the test.
func reportEveryBatch(t *testing.T) {
	old := progressEvery
	progressEvery = 0
	t.Cleanup(func() { progressEvery = old })
}

// leftovers lists the files in dir other than the store and its copies.
func leftovers(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != "state.db" && !strings.HasSuffix(n, ".bak") {
			out = append(out, n)
		}
	}
	return out
}

// oldFile makes a store of format 2 with the script's state, closed: its
// path, what it holds, and the state the upgrade must give back.
func oldFile(t *testing.T) (path string, old, want []string) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 4, 300))
	want = rawDump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeTo(t, path, 2)
	return path, dumpFile(t, path), want
}

// TestUpgradeKeepsACopy: before upgrading a file of an older format, Open
// writes a copy of it as it was beside it, says where, and reports its
// progress through the record rewrites.
func TestUpgradeKeepsACopy(t *testing.T) {
	reportEveryBatch(t)
	path, old, want := oldFile(t)
	var log bytes.Buffer
	s, err := Open(path, "alpha", Options{Logger: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	assertSameRaw(t, want, rawDump(t, s))
	bak := path + ".format2.bak"
	if got := dumpFile(t, bak); !equalStrings(got, old) {
		t.Fatalf("the copy holds %d entries, not the %d of the file as it was", len(got), len(old))
	}
	if l := leftovers(t, filepath.Dir(path)); l != nil {
		t.Fatalf("left in the directory: %v", l)
	}
	text := log.String()
	for _, want := range []string{
		fmt.Sprintf("state: upgrading %s from format 2 to 7; a copy of the file as it was is at %s", path, bak),
		fmt.Sprintf("state: upgraded %s from format 2 to 7", path),
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("log lacks %q:\n%s", want, text)
		}
	}
	records := countKeysIn(t, s, bucketOut) + countKeysIn(t, s, bucketIn)
	if ok, _ := regexp.MatchString(fmt.Sprintf(`state: upgrading \S+: \d+ of %d records`, records), text); !ok || records == 0 {
		t.Fatalf("no progress of %d records in the log:\n%s", records, text)
	}
}

// countKeysIn counts the records of every channel under parent.
func countKeysIn(t testing.TB, s *Store, parent []byte) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		p := tx.Bucket(parent)
		return p.ForEachBucket(func(ck []byte) error {
			n += p.Bucket(ck).Stats().KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestUpgradeCopyInTheWay: when the copy cannot be written (here a
// directory, or an earlier copy, at its name) Open fails, says why, and
// the file stays as it was; once the name is free the upgrade goes on.
func TestUpgradeCopyInTheWay(t *testing.T) {
	for _, dir := range []bool{true, false} {
		path, old, want := oldFile(t)
		bak := path + ".format2.bak"
		if dir {
			if err := os.Mkdir(bak, 0o700); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(bak, []byte("an earlier copy"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A temporary copy left by a start killed while copying.
		if err := os.WriteFile(bak+".tmp-123", []byte("half a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, "alpha", Options{})
		if err == nil || !strings.Contains(err.Error(), bak+" already exists") || !strings.Contains(err.Error(), "upgrade from format 2") {
			t.Fatalf("dir %v: Open with the copy's name taken: %v", dir, err)
		}
		if got := dumpFile(t, path); !equalStrings(got, old) {
			t.Fatalf("dir %v: the file changed", dir)
		}
		if l := leftovers(t, filepath.Dir(path)); len(l) != 1 || l[0] != "state.db.format2.bak.tmp-123" {
			t.Fatalf("dir %v: in the directory: %v; want only what was there", dir, l)
		}
		if !dir {
			if b, err := os.ReadFile(bak); err != nil || string(b) != "an earlier copy" {
				t.Fatalf("the earlier copy: %q, %v", b, err)
			}
		}
		if err := os.RemoveAll(bak); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, "alpha", Options{})
		if err != nil {
			t.Fatalf("dir %v: Open once the name is free: %v", dir, err)
		}
		if l := leftovers(t, filepath.Dir(path)); l != nil {
			t.Fatalf("dir %v: left in the directory after the upgrade: %v", dir, l)
		}
		assertSameRaw(t, want, rawDump(t, s))
		_ = s.Close()
	}
}

// TestUpgradeResumedKeepsFirstCopy: an upgrade interrupted after it
// began (the file marked, some held records rewritten) resumes at the
// next Open and keeps the copy its first attempt wrote.
func TestUpgradeResumedKeepsFirstCopy(t *testing.T) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 1, 100))
	l := cmdLog{next: s.AppliedIndex()}
	holdScript(t, s, &l)
	want := rawDump(t, s)
	makeFormat6(t, s, path, true)
	editClosed(t, s, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaUpgrading, u64(6)) })
	bak := path + ".format6.bak"
	if err := os.WriteFile(bak, []byte("the first copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s2, err := Open(path, "alpha", Options{Logger: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertSameRaw(t, want, rawDump(t, s2)) // the mark is gone too
	if b, err := os.ReadFile(bak); err != nil || string(b) != "the first copy" {
		t.Fatalf("the first copy: %q, %v", b, err)
	}
	if w := "state: resuming the upgrade of " + path + " from format 6 to 7; a copy of the file as it was is at " + bak; !strings.Contains(log.String(), w) {
		t.Fatalf("log lacks %q:\n%s", w, log.String())
	}
}

// TestUpgradeFinishedByAnotherBuild: a file of the current format with
// this build's mark (an upgrade it began, which 0.1.0 then finished: it
// knows no mark) loses the mark when it opens, and nothing else.
func TestUpgradeFinishedByAnotherBuild(t *testing.T) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 1, 100))
	want := rawDump(t, s)
	editClosed(t, s, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaUpgrading, u64(6)) })
	var log bytes.Buffer
	s2, err := Open(path, "alpha", Options{Logger: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertSameRaw(t, want, rawDump(t, s2))
	if _, err := os.Stat(path + ".format6.bak"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a copy was written: %v", err)
	}
	if w := "was finished by another build; removing its mark"; !strings.Contains(log.String(), w) {
		t.Fatalf("log lacks %q:\n%s", w, log.String())
	}
}

// TestRestoreUpgradeKeepsNoCopy: a snapshot of an older format is
// upgraded without a copy (Raft keeps the snapshot), and says so.
func TestRestoreUpgradeKeepsNoCopy(t *testing.T) {
	path, _, want := oldFile(t)
	snap, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	bpath := filepath.Join(t.TempDir(), "state.db")
	b, err := Open(bpath, "alpha", Options{Logger: logTo(&log)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	assertSameRaw(t, want, rawDump(t, b))
	ents, _ := os.ReadDir(filepath.Dir(bpath))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".bak") || strings.Contains(e.Name(), ".restore-") {
			t.Fatalf("left beside the restored file: %s", e.Name())
		}
	}
	if w := "restored from a snapshot, from format 2 to 7; no copy is kept"; !strings.Contains(log.String(), w) {
		t.Fatalf("log lacks %q:\n%s", w, log.String())
	}
}
