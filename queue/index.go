package queue

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Inbound IDs are chosen by the origin site, so two inbound messages may
// carry the same ID (two origins, or one that reused an ID after its
// retention). The first is indexed in bucketInIDs (id -> ref); every later
// one in bucketInDups (id 0 ref -> nil), so that an acknowledgement of the
// ID reaches all of them and none stays unread for good. IDs contain no 0
// byte (validID), so the prefix id+0 lists exactly that ID's duplicates.

// dupKey is the bucketInDups key of the message at ref r carrying id.
func dupKey(id string, r []byte) []byte {
	k := make([]byte, 0, len(id)+1+len(r))
	k = append(k, id...)
	k = append(k, 0)
	return append(k, r...)
}

// indexInbound indexes the new inbound message at ref r by its ID.
func (a *applier) indexInbound(id string, r []byte) error {
	if a.inIDs.Get([]byte(id)) == nil {
		return a.inIDs.Put([]byte(id), r)
	}
	return a.inDups.Put(dupKey(id, r), nil)
}

// inboundRefs returns the refs of every inbound message carrying id, the
// first received first. The slices are copies.
func (a *applier) inboundRefs(id string) ([][]byte, error) {
	r := a.inIDs.Get([]byte(id))
	if r == nil {
		return nil, nil
	}
	refs := [][]byte{clone(r)}
	prefix := dupKey(id, nil)
	c := a.inDups.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		refs = append(refs, clone(k[len(prefix):]))
	}
	return refs, nil
}

// unindexInbound removes the inbound message at ref r, carrying id, from
// the ID indexes. When it was the indexed one, its first duplicate (if
// any) takes its place.
func (a *applier) unindexInbound(id string, r []byte) error {
	k := []byte(id)
	if len(k) == 0 {
		return nil
	}
	if !bytes.Equal(a.inIDs.Get(k), r) {
		return a.inDups.Delete(dupKey(id, r))
	}
	prefix := dupKey(id, nil)
	if dk, _ := a.inDups.Cursor().Seek(prefix); dk != nil && bytes.HasPrefix(dk, prefix) {
		next := clone(dk[len(prefix):])
		if err := a.inDups.Delete(clone(dk)); err != nil {
			return err
		}
		return a.inIDs.Put(k, next)
	}
	return a.inIDs.Delete(k)
}

// inboxRef reports a damaged inbox entry.
func inboxRef(pos, r []byte) error {
	return corruptf(fmt.Sprintf("bucket %s, pos %x", bucketInbox, pos), "bad ref %x", r)
}

// inboxRecord loads and checks the message that inbox entry pos (ref r)
// lists: it must be stored, intact, unread and at that position.
func inboxRecord(in *bolt.Bucket, pos, r []byte) (record, error) {
	seq, ck, ok := parseRef(r)
	if !ok {
		return record{}, inboxRef(pos, r)
	}
	rec, err := getRecord(in, loc{finIn, ck, seq}, true)
	if err != nil {
		return rec, err
	}
	if len(pos) != 8 || rec.inboxPos != be.Uint64(pos) || rec.state != Delivered {
		return record{}, inboxRef(pos, r)
	}
	return rec, nil
}
