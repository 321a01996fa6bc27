package queue

import (
	"bytes"
	"container/heap"

	bolt "go.etcd.io/bbolt"
)

// prefixMerge reads the entries under several key prefixes of one bucket
// (a mailbox index: mailboxKey(mailbox) then an ordered suffix) as one
// sequence, ordered by the suffix, then by the prefix's place in the
// list: a k-way merge of one cursor per prefix. Reading n entries costs
// O((n + k) log k) and touches, per prefix, at most one entry past the
// last one taken. It lives in one read or write transaction.
//
// The prefixes must not be prefixes of one another (mailbox keys begin
// with their length, so they are not).
type prefixMerge struct {
	heads []*mergeHead // a min-heap of the prefixes with entries left
}

// mergeHead is one prefix's cursor and its current entry.
type mergeHead struct {
	c      *bolt.Cursor
	prefix []byte
	i      int // the prefix's place in the list
	k, v   []byte
}

// newPrefixMerge starts the merge of b's entries under prefixes at the
// first whose suffix is at least from.
func newPrefixMerge(b *bolt.Bucket, prefixes [][]byte, from []byte) *prefixMerge {
	m := &prefixMerge{heads: make([]*mergeHead, 0, len(prefixes))}
	for i, p := range prefixes {
		h := &mergeHead{c: b.Cursor(), prefix: p, i: i}
		seek := make([]byte, 0, len(p)+len(from))
		h.k, h.v = h.c.Seek(append(append(seek, p...), from...))
		if h.valid() {
			m.heads = append(m.heads, h)
		}
	}
	heap.Init(m)
	return m
}

func (h *mergeHead) valid() bool { return h.k != nil && bytes.HasPrefix(h.k, h.prefix) }

func (h *mergeHead) suffix() []byte { return h.k[len(h.prefix):] }

// peek returns the next entry: its prefix's place in the list, its key's
// suffix and its value (valid for the transaction); ok is false when
// every prefix is exhausted.
func (m *prefixMerge) peek() (i int, suffix, v []byte, ok bool) {
	if len(m.heads) == 0 {
		return 0, nil, nil, false
	}
	h := m.heads[0]
	return h.i, h.suffix(), h.v, true
}

// next moves past the entry peek returns.
func (m *prefixMerge) next() {
	if len(m.heads) == 0 {
		return
	}
	h := m.heads[0]
	if h.k, h.v = h.c.Next(); h.valid() {
		heap.Fix(m, 0)
	} else {
		heap.Pop(m)
	}
}

// heap.Interface, for the heap package only.

func (m *prefixMerge) Len() int { return len(m.heads) }

func (m *prefixMerge) Less(a, b int) bool {
	ha, hb := m.heads[a], m.heads[b]
	if c := bytes.Compare(ha.suffix(), hb.suffix()); c != 0 {
		return c < 0
	}
	return ha.i < hb.i
}

func (m *prefixMerge) Swap(a, b int) { m.heads[a], m.heads[b] = m.heads[b], m.heads[a] }

func (m *prefixMerge) Push(x any) { m.heads = append(m.heads, x.(*mergeHead)) }

func (m *prefixMerge) Pop() any {
	h := m.heads[len(m.heads)-1]
	m.heads = m.heads[:len(m.heads)-1]
	return h
}

// uniqueStrings returns ss without repeats, in first-seen order.
func uniqueStrings(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
