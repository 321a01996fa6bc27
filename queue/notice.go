package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Expiry notices. When OpExpire turns a queued message into a tombstone
// (it expired undelivered), apply puts a notice into this site's own
// inbox, in the mailbox the message was sent from (Message.From), so
// that the sending application learns it by reading its mailbox:
//
//   - its ID is NoticeID(message id), its type NoticeType, its precedence
//     the message's, its payload the JSON of a [Notice] (plaintext: it
//     never leaves the site), its flags FlagNotice;
//   - it is stored as an inbound message of the channel (this site, this
//     site, precedence), which no batch can use (a site never receives
//     from itself), so its sequence numbers are the notices' own;
//     [Store.Inbound] does not list that channel;
//   - it is read (acknowledged) and purged like any inbox message, but no
//     read receipt is queued for it, and no read objective applies to it
//     (unread.go).
//
// Link tests and drills expire without a notice.

// FlagNotice marks an expiry notice: a message this site put into its
// own inbox (it never travels). Only a message stored in the notices'
// channel (origin this site) is one. Receive.Validate refuses a batch
// from another site carrying the flag (it would keep the message out of
// the read objectives); apply still takes one from a log, as before.
const FlagNotice uint32 = FlagSealed << 1

// NoticeType is the media type of an expiry notice.
const NoticeType = "application/vnd.hotline.notice+json"

// noticePrefix begins the ID of a notice.
const noticePrefix = "notice-"

// Notice is the payload of an expiry notice (JSON): the expired
// message's ID, destination site and mailbox, precedence, submission and
// expiry times (RFC 3339, UTC) and why (ReasonExpired).
type Notice struct {
	ID          string    `json:"id"`
	To          string    `json:"to"`
	Mailbox     string    `json:"mailbox"`
	Precedence  string    `json:"precedence"`
	SubmittedAt time.Time `json:"submitted_at"`
	ExpiredAt   time.Time `json:"expired_at"`
	Reason      string    `json:"reason"`
}

// ReasonExpired is a Notice's reason when the message's TTL ran out
// before its destination acknowledged it.
const ReasonExpired = "expired"

// NoticeID is the ID of the expiry notice of message id: "notice-" and
// id, or, when that would be longer than MaxIDLen, "notice-sha256-" and
// the hex SHA-256 of id.
func NoticeID(id string) string {
	if len(noticePrefix)+len(id) <= MaxIDLen {
		return noticePrefix + id
	}
	h := sha256.Sum256([]byte(id))
	return noticePrefix + "sha256-" + hex.EncodeToString(h[:])
}

// expiryNotice puts the notice of the message at seq of outbound channel
// ck (its record rec, just expired at now) into this site's inbox.
func (a *applier) expiryNotice(now int64, ck []byte, seq uint64, rec *record) error {
	if rec.flags&(FlagLinkTest|FlagDrill) != 0 {
		return nil
	}
	dest, p, ok := parseChanKey(ck)
	if !ok {
		return corruptf(channelName(ck), "malformed channel key")
	}
	payload, err := json.Marshal(Notice{
		ID: rec.id, To: dest, Mailbox: MailboxName(rec.mailbox), Precedence: p.String(),
		SubmittedAt: time.Unix(0, rec.submittedAt).UTC(), ExpiredAt: time.Unix(0, now).UTC(), Reason: ReasonExpired,
	})
	if err != nil {
		return err
	}
	nck := chanKey(a.site, p)
	last := getU64(a.inChans, nck)
	nseq := last + 1
	msgs, err := seqBucket(a.in, nck)
	if err != nil {
		return err
	}
	pos := getU64(a.meta, metaInboxLast) + 1
	id := NoticeID(rec.id)
	n := record{
		state: Delivered, flags: FlagNotice, submittedAt: now, deliveredAt: now, inboxPos: pos,
		id: id, payload: payload, mailbox: rec.from, mtype: NoticeType,
	}
	l := loc{finIn, nck, nseq}
	if msgs.Get(u64(nseq)) != nil {
		return corruptf(l.String(), "already stored, but channel cursor %s says last is %d", bucketInChans, last)
	}
	rf := ref(nseq, nck)
	if err := msgs.Put(u64(nseq), n.encode(l)); err != nil {
		return err
	}
	if err := a.inbox.Put(u64(pos), rf); err != nil {
		return err
	}
	if err := a.inboxAdd(n.mailbox, pos, rf); err != nil { // mailbox.go
		return err
	}
	if err := a.indexInbound(id, rf); err != nil {
		return err
	}
	if err := a.inChans.Put(nck, u64(nseq)); err != nil {
		return err
	}
	if err := a.meta.Put(metaInboxLast, u64(pos)); err != nil {
		return err
	}
	if err := a.meta.Put(metaUnread, u64(getU64(a.meta, metaUnread)+1)); err != nil {
		return err
	}
	return a.auditMsg(AuditReceived, false, now, nck, nseq, id, n.flags, payload) // audit_apply.go
}
