package queue

import (
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// fileCorrupt is a structural fault of the file (see package boltcheck);
// it wraps ErrCorrupt.
type fileCorrupt struct{ *boltcheck.CorruptError }

func (e *fileCorrupt) Unwrap() error { return ErrCorrupt }

// asCorrupt makes boltcheck's damage an ErrCorrupt of this package.
func asCorrupt(err error) error {
	if ce, ok := errors.AsType[*boltcheck.CorruptError](err); ok {
		return &fileCorrupt{ce}
	}
	return err
}

// openChecked opens the bbolt file at path without letting a damaged
// file crash the process: it walks the pages, opens it and runs bbolt's
// consistency check (boltcheck.Open).
func openChecked(path string) (*bolt.DB, error) {
	db, err := boltcheck.Open(path, 0o600, boltOptions())
	return db, asCorrupt(err)
}

// checkFile walks the file's pages (boltcheck.Check).
func checkFile(path string) error { return asCorrupt(boltcheck.Check(path)) }
