package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
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
//	held:      id -> heldValue (below)
//	held_keys: idempotency key -> id
var (
	bucketHeld     = []byte("held")
	bucketHeldKeys = []byte("held_keys")
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

// HeldMessage is one held message as Store.Held lists it: its status
// (State Held, Seq 0, no payload), its stored payload's size and
// plaintext SHA-256 (from a sealed payload's header), and who submitted
// it on which node.
type HeldMessage struct {
	Status       Status
	PayloadLen   int
	PlaintextSum []byte
	By           Actor
	Node         string
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

// heldRec is a held message as stored.
type heldRec struct {
	item        SubmitItem
	submittedAt int64
	by          Actor
	node        string
	sum         []byte // the plaintext's SHA-256 (SubmitItem.plaintextSum)
}

// heldVersion is the first byte of a held value:
//
//	heldValue = version:byte(1) submitted:varint node:string actor
//	            sum:bytes item sum:uint32
//
// actor as in Release, item as in a Submit (command_codec.go), and the
// CRC32C of the ID (the key) and every byte before it, big-endian.
const heldVersion = 1

func (h *heldRec) encode() []byte {
	it := &h.item
	b := make([]byte, 0, 64+len(h.node)+len(h.by.User)+len(h.by.Peer)+len(h.sum)+len(it.ID)+len(it.Key)+len(it.Dest)+len(it.Payload)+len(it.Mailbox)+len(it.From)+len(it.Type)+8*binary.MaxVarintLen64)
	b = append(b, heldVersion)
	b = binary.AppendVarint(b, h.submittedAt)
	b = AppendString(b, h.node)
	b = appendActor(b, h.by)
	b = AppendBytes(b, h.sum)
	b = appendSubmitItem(b, it)
	return be.AppendUint32(b, heldSum(it.ID, b))
}

func heldSum(id string, b []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(id), castagnoli), castagnoli, b)
}

// decodeHeld parses and checks the held value v stored under id. The
// payload aliases v.
func decodeHeld(id string, v []byte) (heldRec, error) {
	var h heldRec
	where := fmt.Sprintf("bucket %s, key %q", bucketHeld, id)
	if len(v) < 1+4 || v[0] != heldVersion {
		return h, corruptf(where, "malformed held record (%d bytes)", len(v))
	}
	body := v[:len(v)-4]
	if got, want := heldSum(id, body), be.Uint32(v[len(body):]); got != want {
		return h, corruptf(where, "held record checksum %08x, stored %08x", got, want)
	}
	d := NewDecoder(body[1:])
	h.submittedAt = d.Varint()
	h.node = d.Str()
	h.by = d.actor()
	h.sum = d.Bytes()
	d.submitItem(&h.item, "")
	if err := d.Finish(); err != nil {
		return h, corruptf(where, "%v", err)
	}
	if h.item.ID != id {
		return h, corruptf(where, "holds message %q", h.item.ID)
	}
	return h, nil
}

// status is the held message's Status (with its payload if payload).
func (h *heldRec) status(site string, payload bool) *Status {
	it := &h.item
	m := Message{ID: it.ID, Origin: site, Dest: it.Dest, Precedence: it.Precedence, Key: it.Key, Flags: it.Flags,
		SubmittedAt: h.submittedAt, ExpiresAt: it.ExpiresAt, Mailbox: it.Mailbox, From: it.From, Type: it.Type}
	if payload {
		m.Payload = clone(it.Payload)
	}
	return &Status{Message: m, Direction: Outbound, State: Held, SubmittedAt: h.submittedAt, payloadSum: clone(h.sum)}
}

// getHeld returns the held message id, ok false if there is none.
func getHeld(tx *bolt.Tx, id string) (heldRec, bool, error) {
	v := tx.Bucket(bucketHeld).Get([]byte(id))
	if v == nil {
		return heldRec{}, false, nil
	}
	h, err := decodeHeld(id, v)
	return h, err == nil, err
}

// heldByKey returns the held message submitted with idempotency key key.
func heldByKey(tx *bolt.Tx, key string) (heldRec, bool, error) {
	id := tx.Bucket(bucketHeldKeys).Get([]byte(key))
	if id == nil {
		return heldRec{}, false, nil
	}
	h, ok, err := getHeld(tx, string(id))
	if err == nil && (!ok || h.item.Key != key) {
		return h, false, corruptf(fmt.Sprintf("bucket %s, key %q", bucketHeldKeys, key), "does not refer to a held message of that key (id %q)", id)
	}
	return h, ok, err
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
	h, ok, err := getHeld(a.tx, r.ID)
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

// HeldQuery selects held messages: those sent from Mailboxes (stored
// names, "" the default; nil: every mailbox), at most Max (<= 0: 1000).
type HeldQuery struct {
	Mailboxes []string
	Max       int
}

// Held lists the held messages q selects, in ID order, and whether more
// were left out by q.Max. It reads every held message (not their
// payloads): held messages are few, waiting for a person.
func (s *Store) Held(q HeldQuery) (out []HeldMessage, more bool, err error) {
	max := q.Max
	if max <= 0 {
		max = 1000
	}
	var want map[string]bool
	if q.Mailboxes != nil {
		want = map[string]bool{}
		for _, mb := range q.Mailboxes {
			want[mb] = true
		}
	}
	err = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeld).ForEach(func(k, v []byte) error {
			h, err := decodeHeld(string(k), v)
			if err != nil {
				return err
			}
			if want != nil && !want[h.item.From] {
				return nil
			}
			if len(out) == max {
				more = true
				return errStopScan
			}
			out = append(out, HeldMessage{Status: *h.status(s.site, false), PayloadLen: len(h.item.Payload),
				PlaintextSum: clone(h.sum), By: h.by, Node: h.node})
			return nil
		})
	})
	if errors.Is(err, errStopScan) {
		err = nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("queue: held: %w", s.note(err))
	}
	return out, more, nil
}

// HeldCount returns the number of held messages sent from each mailbox
// that has any ("" is reported as DefaultMailbox).
func (s *Store) HeldCount() map[string]int {
	out := map[string]int{}
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeld).ForEach(func(k, v []byte) error {
			if h, err := decodeHeld(string(k), v); err == nil {
				out[MailboxName(h.item.From)]++
			}
			return nil
		})
	})
	return out
}

var errStopScan = errors.New("stop")
