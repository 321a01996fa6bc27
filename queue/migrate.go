package queue

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// migrateBatch bounds the records one migration transaction rewrites, so
// that upgrading a large file needs bounded memory.
const (
	migrateBatch      = 10000
	migrateBatchBytes = 64 << 20
)

// migrate upgrades a file of an older format to formatVersion:
//
//   - format 1 lacked the finalized index: it is built from the records;
//   - formats 1 and 2 stored records and receipts without checksums:
//     every record is rewritten as version 2 (record checksum and payload
//     checksum over the bytes as found) and every queued receipt gets its
//     checksum; inbound messages whose ID another one had are listed in
//     bucketInDups;
//   - formats 1 to 3 lacked the evidence buckets: they are created empty
//     (entries applied before held no evidence);
//   - formats 1 to 4 lacked the inbox by mailbox: it is built from the
//     inbox (every message then was in the default mailbox);
//   - formats 1 to 5 lacked the unread index (unread.go): it is built
//     from the outbound records and the inbox;
//   - formats 1 to 6 stored held records (held_store.go) as version 1,
//     with one checksum over header and payload: each is checked and
//     rewritten as version 2; and they lacked the held index and counts
//     by mailbox (held.go): built from the held records.
//
// Records (and held records) are rewritten in transactions of at most
// migrateBatch records; an interrupted upgrade resumes at the next Open
// (records already at version 2 are kept). Receipts, the indexes and the
// version change in the last transaction. The upgrade trusts the bytes
// it finds (a held record's checksum excepted): damage that happened
// before it is not detected.
//
// Before it changes anything, Open's upgrade writes a copy of the file
// beside it (up.backup; upgrade.go) and logs where; Restore's does not.
// It logs its progress through the record rewrites. Files of format 7
// and 8 need no upgrade (8 is 7 with the site version, siteversion.go).
func migrate(db *bolt.DB, path, site string, up upgrader) error {
	var from uint64
	resumed := false
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if err := checkMeta(meta, site); err != nil {
			return err
		}
		from = getU64(meta, metaVersion)
		resumed = meta.Get(metaUpgrading) != nil
		return nil
	})
	if err == nil && from >= formatVersion && resumed {
		// An upgrade this build began was finished by another build
		// (0.1.0 upgrades without the mark): only the mark is left.
		up.log.Info(fmt.Sprintf("state: the upgrade of %s was finished by another build; removing its mark", path))
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaUpgrading) })
	}
	if err != nil || from == 0 || from >= formatVersion {
		return err
	}
	if err := up.begin(db, path, from, resumed); err != nil {
		return fmt.Errorf("upgrade from format %d: %w", from, err)
	}
	p, err := up.progress(db, path, from)
	if err != nil {
		return fmt.Errorf("upgrade from format %d: %w", from, err)
	}
	for _, d := range []struct {
		parent []byte
		kind   byte
	}{{bucketOut, finOut}, {bucketIn, finIn}} {
		if from >= 3 {
			break // records have their checksums
		}
		if err := migrateRecords(db, d.parent, d.kind, p); err != nil {
			return fmt.Errorf("upgrade from format %d: %w", from, err)
		}
	}
	if from < 7 {
		if err := migrateHeld(db, p); err != nil { // held_store.go
			return fmt.Errorf("upgrade from format %d: %w", from, err)
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		if from == 1 {
			if err := buildFinIndex(tx); err != nil {
				return err
			}
		}
		if from < 3 {
			if err := migrateReceipts(tx); err != nil {
				return err
			}
			if err := buildDupIndex(tx); err != nil {
				return err
			}
		}
		if from < 5 {
			if err := buildMailboxIndex(tx); err != nil { // mailbox.go
				return err
			}
		}
		if from < 6 {
			if err := buildUnreadIndex(tx, site); err != nil { // unread.go
				return err
			}
		}
		if from < 7 {
			if err := buildHeldIndex(tx); err != nil { // held_store.go
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(metaUpgrading); err != nil {
			return err
		}
		return meta.Put(metaVersion, u64(formatVersion))
	})
	if err != nil {
		return fmt.Errorf("upgrade from format %d: %w", from, err)
	}
	p.finish(from)
	return nil
}

// migrateRecords rewrites the version 1 records of every channel under
// parent as version 2, and counts them in p.
func migrateRecords(db *bolt.DB, parent []byte, kind byte, p *progress) error {
	var chans [][]byte
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(parent).ForEachBucket(func(k []byte) error {
			chans = append(chans, clone(k))
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, ck := range chans {
		var after []byte
		for done := false; !done; {
			n := 0 // records seen in this transaction
			err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(parent).Bucket(ck)
				c := b.Cursor()
				k, v := c.First()
				if after != nil {
					k, v = c.Seek(after)
					if bytes.Equal(k, after) {
						k, v = c.Next()
					}
				}
				type kv struct{ k, v []byte }
				var batch []kv
				size := 0
				for n = 0; k != nil && n < migrateBatch && size < migrateBatchBytes; k, v = c.Next() {
					n++
					size += len(v)
					after = clone(k)
					if len(v) > 0 && v[offVersion] == recVersion {
						continue // upgraded by an interrupted migration
					}
					rec, ok := decodeRecord1(v)
					if !ok || len(k) != 8 {
						return corruptf(fmt.Sprintf("bucket %s, channel %s, key %x", parent, channelName(ck), k), "not a version 1 record")
					}
					batch = append(batch, kv{clone(k), rec.encode(loc{kind, ck, be.Uint64(k)})})
				}
				done = k == nil
				b.FillPercent = seqFill
				for _, e := range batch {
					if err := b.Put(e.k, e.v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			p.add(n)
		}
	}
	return nil
}

// migrateReceipts adds checksums to the queued receipts (version 1 had
// none).
func migrateReceipts(tx *bolt.Tx) error {
	out := tx.Bucket(bucketRcptOut)
	var origins [][]byte
	if err := out.ForEachBucket(func(k []byte) error {
		origins = append(origins, clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, origin := range origins {
		q := out.Bucket(origin)
		var keys, vals [][]byte
		if err := q.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 17 {
				return corruptf(fmt.Sprintf("bucket %s, origin %q, key %x", bucketRcptOut, origin, k), "not a version 1 receipt")
			}
			keys = append(keys, clone(k))
			vals = append(vals, be.AppendUint32(clone(v), receiptSum(origin, be.Uint64(k), v)))
			return nil
		}); err != nil {
			return err
		}
		for i := range keys {
			if err := q.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildDupIndex lists in bucketInDups every inbound message whose ID
// in_ids maps to another message.
func buildDupIndex(tx *bolt.Tx) error {
	in, ids, dups := tx.Bucket(bucketIn), tx.Bucket(bucketInIDs), tx.Bucket(bucketInDups)
	var add [][]byte
	err := in.ForEachBucket(func(ck []byte) error {
		return in.Bucket(ck).ForEach(func(k, v []byte) error {
			rec, err := decodeMeta(v, loc{finIn, ck, be.Uint64(k)})
			if err != nil {
				return err
			}
			r := ref(be.Uint64(k), ck)
			if cur := ids.Get([]byte(rec.id)); cur != nil && !bytes.Equal(cur, r) {
				add = append(add, dupKey(rec.id, r))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, k := range add {
		if err := dups.Put(k, nil); err != nil {
			return err
		}
	}
	return nil
}
