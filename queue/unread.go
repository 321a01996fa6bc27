package queue

import (
	"bytes"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// The unread index lists the messages a read objective applies to and
// that are not read yet, grouped by (direction, other site, mailbox,
// precedence) and ordered by submission time within a group, so that a
// checker of read objectives (Store.Overdue) reads only the overdue
// messages of each group and one more:
//
//	unread: dir(1) site_len(1) site mailbox_len(1) mailbox precedence(1)
//	        submitted(8, sign bit flipped) seq(8) -> nil
//
// dir is finOut for an outbound message that is Queued or Delivered (the
// destination has not read it; an expired or read one is not listed) and
// finIn for an inbound message unread in the inbox. Link tests, drills
// and expiry notices (notice.go) are never listed: nobody reads them
// against an objective. The index is a function of the stored records
// alone, kept by submit, expire, the read receipts and purge (outbound)
// and by receive and markRead (inbound), and built from the records when
// a file of format 5 or older is opened (buildUnreadIndex).
var bucketUnread = []byte("unread")

// objectiveFlags are the flags of messages no read objective applies to.
const objectiveFlags = FlagLinkTest | FlagDrill | FlagNotice

func unreadKey(dir byte, site, mb string, p Precedence, submitted int64, seq uint64) []byte {
	k := make([]byte, 0, 3+len(site)+len(mb)+1+16)
	k = append(k, dir, byte(len(site)))
	k = append(k, site...)
	k = append(k, byte(len(mb)))
	k = append(k, mb...)
	k = append(k, byte(p))
	k = be.AppendUint64(k, finTime(submitted))
	return be.AppendUint64(k, seq)
}

// parseUnreadKey splits a key of bucketUnread: its group prefix (up to
// and including the precedence), the group, the submission time and the
// sequence number.
func parseUnreadKey(k []byte) (prefix []byte, g UnreadGroup, submitted int64, seq uint64, ok bool) {
	if len(k) < 3 || (k[0] != finIn && k[0] != finOut) {
		return nil, g, 0, 0, false
	}
	sl := int(k[1])
	if len(k) < 2+sl+1 {
		return nil, g, 0, 0, false
	}
	ml := int(k[2+sl])
	end := 2 + sl + 1 + ml + 1
	if len(k) != end+16 {
		return nil, g, 0, 0, false
	}
	g = UnreadGroup{Direction: Inbound, Site: string(k[2 : 2+sl]), Mailbox: string(k[3+sl : 3+sl+ml]), Precedence: Precedence(k[end-1])}
	if k[0] == finOut {
		g.Direction = Outbound
	}
	if !g.Precedence.Valid() {
		return nil, g, 0, 0, false
	}
	return k[:end], g, int64(be.Uint64(k[end:]) ^ 1<<63), be.Uint64(k[end+8:]), true
}

// unreadPut lists (add) or unlists a message in the unread index: one
// of direction dir with the other site at channel key ck, its sequence
// number and its record. Messages no objective applies to are ignored;
// unlisting a message not listed changes nothing.
func (a *applier) unreadPut(add bool, dir byte, ck []byte, seq uint64, rec *record) error {
	if rec.flags&objectiveFlags != 0 {
		return nil
	}
	site, p, ok := parseChanKey(ck)
	if !ok {
		return corruptf(channelName(ck), "malformed channel key")
	}
	if dir == finIn && site == a.site {
		return nil // a notice (notice.go)
	}
	b := a.tx.Bucket(bucketUnread)
	k := unreadKey(dir, site, rec.mailbox, p, rec.submittedAt, seq)
	if add {
		return b.Put(k, nil)
	}
	return b.Delete(k)
}

// UnreadGroup is a group of messages with one read objective: of one
// direction, other site (the destination of an outbound message, the
// origin of an inbound one), mailbox (the destination's, as stored: ""
// the default one) and precedence.
type UnreadGroup struct {
	Direction  Direction
	Site       string
	Mailbox    string
	Precedence Precedence
}

// OverdueQuery asks which messages are past their read objective at Now
// (Unix ns): unread outbound messages (Queued or Delivered) and unread
// inbox messages, not link tests, drills or notices. Objective gives the
// read objective of a group in nanoseconds (<= 0: none, the group is
// skipped). Max bounds the Items returned (<= 0: 100), Scan the index
// entries read (<= 0: 100000); past it the counts are lower bounds
// (OverdueReport.Truncated).
type OverdueQuery struct {
	Now       int64
	Objective func(UnreadGroup) int64
	Max       int
	Scan      int
}

// OverdueItem is one overdue message: its group, ID, sequence number,
// submission time and the time it was due (SubmittedAt + the objective).
type OverdueItem struct {
	UnreadGroup
	ID          string
	Seq         uint64
	SubmittedAt int64
	Due         int64
}

// OverdueReport answers an OverdueQuery: the number of overdue messages
// of each group that has any, and the Max that were due first (ordered
// by Due, then group and sequence).
type OverdueReport struct {
	Counts    map[UnreadGroup]int
	Items     []OverdueItem
	Truncated bool
}

// Overdue answers q, reading per group only the entries that are overdue
// and the first one that is not.
func (s *Store) Overdue(q OverdueQuery) (*OverdueReport, error) {
	max, scan := q.Max, q.Scan
	if max <= 0 {
		max = 100
	}
	if scan <= 0 {
		scan = 100000
	}
	rep := &OverdueReport{Counts: map[UnreadGroup]int{}}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUnread).Cursor()
		k, _ := c.First()
		for k != nil {
			prefix, g, _, _, ok := parseUnreadKey(k)
			if !ok {
				return corruptf(fmt.Sprintf("bucket %s, key %x", bucketUnread, k), "malformed")
			}
			var items []OverdueItem
			if obj := q.Objective(g); obj > 0 {
				for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
					if scan--; scan < 0 {
						rep.Truncated = true
						break
					}
					_, _, at, seq, ok := parseUnreadKey(k)
					if !ok || len(k) != len(prefix)+16 {
						return corruptf(fmt.Sprintf("bucket %s, key %x", bucketUnread, k), "malformed")
					}
					if at > q.Now-obj {
						break
					}
					rep.Counts[g]++
					if len(items) < max {
						items = append(items, OverdueItem{UnreadGroup: g, Seq: seq, SubmittedAt: at, Due: at + obj})
					}
				}
			}
			rep.Items = append(rep.Items, items...)
			if rep.Truncated {
				break
			}
			// The next group: this one's prefix with the precedence byte
			// one higher (precedences are below 255).
			next := clone(prefix)
			next[len(next)-1]++
			k, _ = c.Seek(next)
		}
		sort.Slice(rep.Items, func(i, j int) bool {
			a, b := &rep.Items[i], &rep.Items[j]
			if a.Due != b.Due {
				return a.Due < b.Due
			}
			if a.Direction != b.Direction || a.Site != b.Site || a.Mailbox != b.Mailbox || a.Precedence != b.Precedence {
				return fmt.Sprint(a.UnreadGroup) < fmt.Sprint(b.UnreadGroup)
			}
			return a.Seq < b.Seq
		})
		if len(rep.Items) > max {
			rep.Items = rep.Items[:max]
		}
		out, in := tx.Bucket(bucketOut), tx.Bucket(bucketIn)
		for i := range rep.Items {
			it := &rep.Items[i]
			kind, parent := finIn, in
			if it.Direction == Outbound {
				kind, parent = finOut, out
			}
			ck := chanKey(it.Site, it.Precedence)
			rec, err := getRecord(parent, loc{kind, ck, it.Seq}, false)
			if err != nil {
				return err
			}
			it.ID = rec.id
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: overdue: %w", s.note(err))
	}
	return rep, nil
}

// buildUnreadIndex lists every unread message in the unread index: the
// upgrade from format 5, which had no such index.
func buildUnreadIndex(tx *bolt.Tx, site string) error {
	a := &applier{tx: tx, site: site}
	out := tx.Bucket(bucketOut)
	err := tx.Bucket(bucketOutChans).ForEach(func(ck, _ []byte) error {
		msgs := out.Bucket(ck)
		if msgs == nil {
			return nil
		}
		return msgs.ForEach(func(k, v []byte) error {
			seq := be.Uint64(k)
			rec, err := decodeMeta(v, loc{finOut, ck, seq})
			if err != nil {
				return err
			}
			if rec.state != Queued && rec.state != Delivered {
				return nil
			}
			return a.unreadPut(true, finOut, ck, seq, &rec)
		})
	})
	if err != nil {
		return err
	}
	in := tx.Bucket(bucketIn)
	return tx.Bucket(bucketInbox).ForEach(func(k, r []byte) error {
		seq, ck, ok := parseRef(r)
		if !ok {
			return inboxRef(k, r)
		}
		rec, err := inboxRecord(in, k, r)
		if err != nil {
			return err
		}
		return a.unreadPut(true, finIn, ck, seq, &rec)
	})
}
