package trust

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Hash is a Merkle tree hash (RFC 6962 / tlog's SHA-256).
type Hash = tlog.Hash

// memTree is a small Merkle tree held in memory: the stored hashes of
// tlog's layout for its leaves, from which root and proofs are read.
type memTree struct {
	hashes []tlog.Hash
	n      int64
}

func newMemTree(leaves []Hash) (*memTree, error) {
	t := &memTree{}
	r := tlog.HashReaderFunc(t.read)
	for i, l := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(int64(i), l, r)
		if err != nil {
			return nil, err
		}
		t.hashes = append(t.hashes, hs...)
	}
	t.n = int64(len(leaves))
	return t, nil
}

func (t *memTree) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("%w: tree hash %d out of range", ErrMalformed, x)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// Root is the Merkle tree hash of leaves (RFC 6962; the empty tree's hash
// for none).
func Root(leaves []Hash) (Hash, error) {
	t, err := newMemTree(leaves)
	if err != nil {
		return Hash{}, err
	}
	return tlog.TreeHash(t.n, tlog.HashReaderFunc(t.read))
}

// Prove returns the inclusion proof of leaf i in the tree of leaves.
func Prove(leaves []Hash, i int) ([]Hash, error) {
	if i < 0 || i >= len(leaves) {
		return nil, fmt.Errorf("trust: leaf %d of %d", i, len(leaves))
	}
	t, err := newMemTree(leaves)
	if err != nil {
		return nil, err
	}
	return tlog.ProveRecord(t.n, int64(i), tlog.HashReaderFunc(t.read))
}

// CheckInclusion reports whether proof shows leaf at index i in the tree
// of n leaves whose hash is root.
func CheckInclusion(root Hash, n int64, i int64, leaf Hash, proof []Hash) error {
	if err := tlog.CheckRecord(tlog.RecordProof(proof), n, root, i, leaf); err != nil {
		return fmt.Errorf("%w: leaf %d is not in the tree of %d: %v", ErrBadSignature, i, n, err)
	}
	return nil
}
