package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Two-person release. An OpSubmit carrying a Release body (its ID empty,
// By the submitter) holds its items: each is stored in state Held, with
// its submitter, outside every channel, so it has no sequence number and
// blocks nothing. An OpRelease (ID the held message, By the releaser)
// moves it into its channel: the next sequence number, SubmittedAt the
// release's time (the time it became sendable; the hold's time is in its
// audit record), state Queued, and from there on it is an outbound
// message like any other. The releaser must not be the submitter (by
// UID); who may release at all is the daemon's decision (the mailbox's
// releasers), made before it proposes.
//
// IDs and idempotency keys are shared with the outbound messages: a
// submit (held or not) whose ID or key names a held message is answered
// with it (Existing, Seq 0) or ErrKeyConflict, exactly as for a queued
// one, and the release moves the key to out_keys in the same
// transaction. Held messages never expire (ExpiresAt counts once
// released: a message released after it goes out as a tombstone at the
// next OpExpire) and are never purged.
//
// Audit: the hold appends the "submitted" record (Seq 0, the submitter
// as its actor, the payload's hash), the release a "released" record
// (its Seq, the releaser as actor).
//
//	held:        id -> heldValue (held_store.go)
//	held_keys:   idempotency key -> id
//	held_mbox:   mailboxKey(from) submitted(8, sign bit flipped) id -> nil
//	held_mbox_n: mailboxKey(from) -> count(8)
//
// held_mbox lists the held messages by the mailbox they are sent from
// (SubmitItem.From, "" the default), in submission order (then by ID), and
// held_mbox_n counts them, so that listing one mailbox's (Store.Held) or
// counting them (Store.HeldCount) reads no other. Hold and release keep
// both in the same transaction as held; they are a function of the held
// records alone, built from them when a file of format 6 is opened
// (buildHeldIndex).
var (
	bucketHeld      = []byte("held")
	bucketHeldKeys  = []byte("held_keys")
	bucketHeldMbox  = []byte("held_mbox")
	bucketHeldCount = []byte("held_mbox_n")
)

// Sentinels of OpRelease (Result.Err begins with their text).
var (
	// ErrNotHeld: no held message has that ID (never held, released
	// already, or unknown).
	ErrNotHeld = errors.New("queue: message is not held")
	// ErrSelfRelease: the releaser is the submitter.
	ErrSelfRelease = errors.New("queue: the submitter cannot release their own message")
)

// Release is body bit 10 of a command. On an OpRelease, ID is the held
// message to release and By the releaser; on an OpSubmit, ID is empty,
// the command's items are held and By is their submitter. Node is the
// node that took the request.
type Release struct {
	ID   string `json:"id,omitempty"`
	By   Actor  `json:"by"`
	Node string `json:"node,omitempty"`
}

// ReleaseResult is the outcome of an OpRelease: the message's new
// sequence number in its channel.
type ReleaseResult struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
}

// bodyRelease is the body bit of Release in the log entry format
// (command_codec.go):
//
//	Release = id:string node:string uid:varint user:string pid:varint peer:string
const bodyRelease = 1 << 10

func appendRelease(b []byte, r *Release) []byte {
	if r == nil {
		return b
	}
	b = AppendString(b, r.ID)
	b = AppendString(b, r.Node)
	return appendActor(b, r.By)
}

func appendActor(b []byte, a Actor) []byte {
	b = binary.AppendVarint(b, a.UID)
	b = AppendString(b, a.User)
	b = binary.AppendVarint(b, a.PID)
	return AppendString(b, a.Peer)
}

func (d *Decoder) actor() Actor {
	return Actor{UID: d.Varint(), User: d.limited("user", MaxAuditUser), PID: d.Varint(), Peer: d.limited("peer", MaxAuditPeer)}
}

func releaseSize(r *Release) int {
	if r == nil {
		return 0
	}
	return varintLen(r.By.UID) + varintLen(r.By.PID) + stringLen(len(r.ID)) + stringLen(len(r.Node)) + stringLen(len(r.By.User)) + stringLen(len(r.By.Peer))
}

func decodeRelease(d *Decoder, c *Command, bodies uint64) {
	if bodies&bodyRelease == 0 {
		return
	}
	r := &Release{ID: d.limited("message id", MaxIDLen), Node: d.limited("node", MaxNameLen)}
	r.By = d.actor()
	switch {
	case d.Err() != nil:
	case c.Op == OpRelease && r.ID == "":
		d.fail("release body without a message id")
	case c.Op == OpSubmit && r.ID != "":
		d.fail("hold body of a submit naming message %q", r.ID)
	case c.Op != OpRelease && c.Op != OpSubmit:
		d.fail("release body on a %s command", c.Op)
	}
	c.Release = r
}

// existingHeld answers an item whose ID or key names the held message h:
// the same message again (Existing, Seq 0), or a key conflict.
func existingHeld(h *heldRec, it *SubmitItem, sum []byte) SubmitResult {
	res := SubmitResult{ID: it.ID}
	if it.ID != h.item.ID {
		st := h.item
		if !sameSubmission(&Message{Dest: st.Dest, Precedence: st.Precedence, Mailbox: st.Mailbox, From: st.From, Type: st.Type}, h.sum, it, sum) {
			res.Err = ErrKeyConflict.Error()
			return res
		}
	}
	res.ID, res.Existing = h.item.ID, true
	return res
}

// holdItem stores it as held, submitted at now by hold.By.
func (a *applier) holdItem(now int64, it *SubmitItem, hold *Release) (SubmitResult, error) {
	h := heldRec{item: *it, submittedAt: now, by: hold.By, node: hold.Node, sum: it.plaintextSum()}
	if err := a.tx.Bucket(bucketHeld).Put([]byte(it.ID), h.encode()); err != nil {
		return SubmitResult{}, err
	}
	if err := heldIndexAdd(a.tx, &h); err != nil { // held_store.go
		return SubmitResult{}, err
	}
	if it.Key != "" {
		if err := a.tx.Bucket(bucketHeldKeys).Put([]byte(it.Key), []byte(it.ID)); err != nil {
			return SubmitResult{}, err
		}
	}
	return SubmitResult{ID: it.ID}, a.auditAs(&hold.By, hold.Node, func() error {
		return a.auditMsg(AuditSubmitted, true, now, chanKey(it.Dest, it.Precedence), 0, it.ID, it.Flags, it.Payload)
	})
}

// auditAs runs fn (which appends audit records) with by and node as the
// records' actor.
func (a *applier) auditAs(by *Actor, node string, fn func() error) error {
	a.actor, a.actorNode = by, node
	defer func() { a.actor, a.actorNode = nil, "" }()
	return fn()
}

// release applies OpRelease; see Release.
func (a *applier) release(now int64, r *Release) (Result, error) {
	refuse := func(err error, format string, args ...any) (Result, error) {
		return Result{Err: fmt.Sprintf("%v: ", err) + fmt.Sprintf(format, args...)}, nil
	}
	if err := validID(r.ID); err != nil {
		return Result{Err: "queue: release: " + err.Error()}, nil
	}
	h, ok, err := getHeld(a.tx, r.ID, true)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return refuse(ErrNotHeld, "%q", r.ID)
	}
	if r.By.UID < 0 || r.By.UID == h.by.UID {
		return refuse(ErrSelfRelease, "%q was submitted by uid %d, the release asked by uid %d", r.ID, h.by.UID, r.By.UID)
	}
	it := &h.item
	ck := chanKey(it.Dest, it.Precedence)
	if a.fenced(fenceOut, ck) {
		return Result{Err: fmt.Sprintf("%v %s (retry later)", ErrResyncing, it.Dest)}, nil
	}
	if it.Key != "" && a.outKeys.Get([]byte(it.Key)) != nil {
		return Result{}, corruptf(fmt.Sprintf("bucket %s, key %q", bucketOutKeys, it.Key), "held message %q has the same key", it.ID)
	}
	var hash []byte
	if it.Key != "" {
		hash = h.sum
	}
	seq, err := a.enqueue(now, it, hash)
	if err != nil {
		return Result{}, err
	}
	if err := a.tx.Bucket(bucketHeld).Delete([]byte(it.ID)); err != nil {
		return Result{}, err
	}
	if err := heldIndexRemove(a.tx, &h); err != nil {
		return Result{}, err
	}
	if it.Key != "" {
		if err := a.tx.Bucket(bucketHeldKeys).Delete([]byte(it.Key)); err != nil {
			return Result{}, err
		}
	}
	err = a.auditAs(&r.By, r.Node, func() error {
		return a.auditMsg(AuditReleased, true, now, ck, seq, it.ID, it.Flags, nil)
	})
	return Result{Release: &ReleaseResult{ID: it.ID, Seq: seq}}, err
}
