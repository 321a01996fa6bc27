package queue

import (
	"errors"
	"fmt"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// seqFill is the fill percent of buckets keyed by increasing sequence
// numbers: appends never go back into a split page, so pack them.
const seqFill = 0.9

// maxTxNodes bounds the B+tree nodes one apply transaction modifies
// (bbolt's TxStats.NodeCount): once an entry takes a transaction past it,
// Apply commits what it applied so far and goes on in a new one. Raft
// hands a follower that fell behind up to MaxAppendEntries committed
// entries at once, each up to a link batch (512 messages); in a single
// transaction their dirty pages and records held over 100 MB (a 300,000
// message backlog draining: a follower's heap went from 40 to 146 MB).
// A node modifies about two pages' worth of memory (its inodes, and the
// page it is written to) and a touched message record is a few KiB, so a
// transaction holds some tens of MB at most.
var maxTxNodes int64 = 2048

// Apply applies committed log entries in order and returns one Result per
// entry. Each bbolt write transaction also records the highest index it
// applied; a batch is one transaction unless it modifies more than
// maxTxNodes nodes, then several, each ending at an entry's end. Entries
// with Index at or below AppliedIndex are skipped (Result.Skipped). An
// entry that does not decode or is invalid gets Result.Err and still
// counts as applied. If a transaction cannot be committed, none of its
// entries and none after them are applied (those before, in earlier
// transactions, are), every such result carries the error and the store
// refuses later batches (see Err). So does an entry this build must not
// skip, since the other nodes apply it: one of a newer log format
// (*NewerFormatError), a damaged one (ErrCorrupt), or an OpSiteVersion
// above MaxSiteVersion (*NewerSiteVersionError).
func (s *Store) Apply(entries []Entry) []Result {
	res := make([]Result, len(entries))
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	applied := s.applied.Load()
	if err := s.Err(); err != nil {
		return failAll(res, entries, applied, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return failAll(res, entries, applied, ErrClosed)
	}
	if !anyAbove(entries, applied) {
		for i := range res {
			res[i].Skipped = true
		}
		return res // a replay: nothing to commit
	}
	done := 0
	for done < len(entries) {
		n, last, err := s.applyTx(entries[done:], res[done:], applied)
		if err != nil {
			err = fmt.Errorf("queue: apply: %w", s.note(err))
			s.failed.Store(&err)
			failAll(res[done:], entries[done:], applied, err)
			break
		}
		applied, done = last, done+n
		s.applied.Store(last)
	}
	if done > 0 {
		s.noteInbox(s.h.db, false)
		s.notify()
	}
	return res
}

func anyAbove(entries []Entry, applied uint64) bool {
	for _, e := range entries {
		if e.Index > applied {
			return true
		}
	}
	return false
}

// failAll sets err on every result whose entry is above applied.
func failAll(res []Result, entries []Entry, applied uint64, err error) []Result {
	for i, e := range entries {
		if e.Index <= applied {
			res[i] = Result{Skipped: true}
		} else {
			res[i] = Result{Err: err.Error()}
		}
	}
	return res
}

// applyTx applies entries in one write transaction, up to the entry that
// takes it past maxTxNodes, and returns how many entries it consumed and
// the new applied index. An error means the transaction was rolled back.
func (s *Store) applyTx(entries []Entry, res []Result, applied uint64) (n int, last uint64, err error) {
	tx, err := s.h.db.Begin(true)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	a := newApplier(tx, s.site)
	a.sites = s.sites
	n = len(entries)
	for i, e := range entries {
		if st := tx.Stats(); i > 0 && st.GetNodeCount() > maxTxNodes {
			n = i
			break
		}
		if e.Index <= applied {
			res[i].Skipped = true
			continue
		}
		applied = e.Index
		cmd, err := DecodeCommand(e.Data)
		var ce *CorruptError
		if errors.As(err, &ce) {
			// This node's copy of the entry is damaged; the other nodes
			// apply theirs. Skipping it would diverge: stop instead.
			ce.Record = fmt.Sprintf("raft log entry %d", e.Index)
			return 0, 0, ce
		}
		if nf, ok := errors.AsType[*NewerFormatError](err); ok {
			// A newer build wrote it, and the nodes running it apply it:
			// skipping it would diverge too.
			return 0, 0, fmt.Errorf("raft log entry %d: %w", e.Index, nf)
		}
		if err != nil {
			res[i].Err = err.Error()
			continue
		}
		if err := cmd.siteVersionFault(); err != nil {
			// The leader believes every node understands what this build
			// does not (siteversion.go): stop, as for a newer format.
			return 0, 0, fmt.Errorf("raft log entry %d: %w", e.Index, err)
		}
		if res[i], err = a.applySafe(cmd); err != nil {
			return 0, 0, fmt.Errorf("entry %d (%s): %w", e.Index, cmd.Op, err)
		}
	}
	if err := a.aud.flush(a.meta); err != nil {
		return 0, 0, err
	}
	if err := a.meta.Put(metaApplied, u64(applied)); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("commit: %w", err)
	}
	if a.siteVer != 0 {
		s.siteVer.Store(a.siteVer)
	}
	return n, applied, nil
}

// applier applies commands inside one write transaction.
type applier struct {
	tx    *bolt.Tx
	site  string
	sites map[string]bool // Options.Sites; nil: any

	meta                                   *bolt.Bucket
	out, outChans, outIDs, outKeys, expiry *bolt.Bucket
	in, inChans, inIDs, inbox, inDups      *bolt.Bucket
	rcptOut, rcptQueues, rcptIn            *bolt.Bucket
	fin                                    *bolt.Bucket
	fence                                  *bolt.Bucket // backup.go
	aud                                    auditTx      // audit_apply.go
	audited                                bool         // the command being applied appends audit records (Command.audited)
	// actor and actorNode, while set, are who asked for the message
	// events auditMsg records (a MarkRead's By and Node).
	actor     *Actor
	actorNode string
	// siteVer is the site version an OpSiteVersion of this transaction
	// raised to, or 0 (siteversion.go).
	siteVer uint64
}

func newApplier(tx *bolt.Tx, site string) *applier {
	a := &applier{
		tx: tx, site: site,
		meta: tx.Bucket(bucketMeta),
		out:  tx.Bucket(bucketOut), outChans: tx.Bucket(bucketOutChans),
		outIDs: tx.Bucket(bucketOutIDs), outKeys: tx.Bucket(bucketOutKeys), expiry: tx.Bucket(bucketExpiry),
		in: tx.Bucket(bucketIn), inChans: tx.Bucket(bucketInChans), inIDs: tx.Bucket(bucketInIDs),
		inbox: tx.Bucket(bucketInbox), inDups: tx.Bucket(bucketInDups),
		rcptOut: tx.Bucket(bucketRcptOut), rcptQueues: tx.Bucket(bucketRcptQueues), rcptIn: tx.Bucket(bucketRcptIn),
		fin: tx.Bucket(bucketFin), fence: tx.Bucket(bucketFence),
		aud: openAuditTx(tx),
	}
	a.inbox.FillPercent = seqFill
	return a
}

// errBug wraps a recovered panic: the transaction must not commit.
var errBug = errors.New("internal error")

// applySafe applies one command. Rejections are reported in Result.Err; a
// returned error is a storage failure (or a bug) after which the
// transaction must be rolled back.
func (a *applier) applySafe(c *Command) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic: %v\n%s", errBug, p, debug.Stack())
		}
	}()
	return a.apply(c)
}

func (a *applier) apply(c *Command) (Result, error) {
	var res Result
	var err error
	if f := c.evidenceFault(); f != nil { // evidence.go
		return Result{Err: fmt.Sprintf("queue: %s: %v: %v", c.Op, ErrInvalid, f)}, nil
	}
	if a.audited = c.audited(); !a.audited && (c.Op == OpAudit || c.Op == OpCheckpoint) {
		return Result{Err: fmt.Sprintf("queue: %v: %s command in a log entry of an older format", ErrInvalid, c.Op)}, nil
	}
	if c.Release != nil && (c.Op != OpSubmit && c.Op != OpRelease || c.Op == OpSubmit && c.Release.ID != "") {
		return Result{Err: fmt.Sprintf("queue: %v: release body on a %s command", ErrInvalid, c.Op)}, nil
	}
	switch c.Op {
	case OpSubmit:
		if c.Submit == nil {
			break
		}
		res.Submit, err = a.submit(c.Time, c.Submit, c.Release)
		return res, err
	case OpDelivered:
		if c.Delivered == nil {
			break
		}
		return res, a.delivered(c.Time, c.Delivered)
	case OpReceive:
		if c.Receive == nil {
			break
		}
		if verr := c.Receive.valid(a.site); verr != nil {
			return Result{Err: "queue: receive: " + verr.Error()}, nil
		}
		if o := c.Receive.Origin; o == a.site || (a.sites != nil && !a.sites[o]) {
			return Result{Err: fmt.Sprintf("queue: receive: %v: origin %q is not a configured site", ErrInvalid, o)}, nil
		}
		res.Receive, err = a.receive(c.Time, c.Receive)
		return res, err
	case OpMarkRead:
		if c.MarkRead == nil {
			break
		}
		res.MarkRead, err = a.markRead(c.Time, c.MarkRead)
		return res, err
	case OpReceipts:
		if c.Receipts == nil {
			break
		}
		if verr := validName(c.Receipts.From); verr != nil {
			return Result{Err: "queue: receipts: from: " + verr.Error()}, nil
		}
		res.Receipts, err = a.receipts(c.Time, c.Receipts)
		return res, err
	case OpReceiptsAcked:
		if c.ReceiptsAcked == nil {
			break
		}
		if verr := validName(c.ReceiptsAcked.Origin); verr != nil {
			return Result{Err: "queue: receipts acked: origin: " + verr.Error()}, nil
		}
		return res, a.receiptsAcked(c.ReceiptsAcked)
	case OpExpire:
		res.Expire, err = a.expire(c.Time)
		return res, err
	case OpPurge:
		if c.Purge == nil {
			break
		}
		if c.Purge.Max < 0 {
			return Result{Err: fmt.Sprintf("queue: purge: %v: negative max %d", ErrInvalid, c.Purge.Max)}, nil
		}
		res.Purge, err = a.purge(c.Purge)
		return res, err
	case OpAudit:
		if c.Audit == nil {
			break
		}
		return a.auditOp(c.Time, c.Audit)
	case OpCheckpoint:
		if c.Checkpoint == nil {
			break
		}
		return a.checkpoint(c.Time, c.Checkpoint)
	case OpRelease:
		if c.Release == nil || c.Release.ID == "" {
			break
		}
		return a.release(c.Time, c.Release) // held.go
	case OpSiteVersion:
		if c.SiteVersion == nil {
			break
		}
		return a.siteVersion(c.SiteVersion) // siteversion.go
	default:
		return Result{Err: fmt.Sprintf("queue: %v: unknown command %q", ErrInvalid, c.Op)}, nil
	}
	return Result{Err: fmt.Sprintf("queue: %v: %s command without its body", ErrInvalid, c.Op)}, nil
}

// seqBucket returns the per-channel bucket under parent, creating it.
func seqBucket(parent *bolt.Bucket, ck []byte) (*bolt.Bucket, error) {
	b, err := parent.CreateBucketIfNotExists(ck)
	if err != nil {
		return nil, fmt.Errorf("channel bucket: %w", err)
	}
	b.FillPercent = seqFill
	return b, nil
}
