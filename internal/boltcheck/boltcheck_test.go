package boltcheck

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestOpenNarrowsMode: a file an older version left world-readable is
// 0600 once opened; a file already narrower keeps its mode.
func TestOpenNarrowsMode(t *testing.T) {
	for _, tc := range []struct{ had, want os.FileMode }{
		{0o644, 0o600},
		{0o666, 0o600},
		{0o640, 0o600},
		{0o600, 0o600},
		{0o400, 0o400},
	} {
		path := filepath.Join(t.TempDir(), "state.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.had); err != nil {
			t.Fatal(err)
		}
		opts := &bolt.Options{ReadOnly: tc.had&0o200 == 0}
		db, err = Open(path, 0o600, opts)
		if err != nil {
			t.Fatalf("open a %v file: %v", tc.had, err)
		}
		_ = db.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.want {
			t.Errorf("a %v file is %v after Open, want %v", tc.had, got, tc.want)
		}
	}
}
