package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
)

// Errors callers branch on, checked with errors.Is.
var (
	// ErrUnreachable: no node of the site (or the named node) replied on
	// any path before the context ended. Wrapped with detail.
	ErrUnreachable = errors.New("transport: no node of the site reachable on any path")
	// ErrClosed: the Link is closed.
	ErrClosed = errors.New("transport: link closed")
	// ErrTooLarge: the encoded request is larger than MaxFrame; split it.
	ErrTooLarge = errors.New("transport: frame larger than MaxFrame")
	// ErrUnknownPeer: the site or node is not in Config.Peers.
	ErrUnknownPeer = errors.New("transport: unknown peer")
	// ErrBadBatch: the batch is inconsistent (kind, sites, precedence);
	// sending it again will not help.
	ErrBadBatch = errors.New("transport: bad batch")
)

// MaxBatchItems is the most messages or receipts one Batch may carry. It
// bounds what decoding a frame allocates besides the frame itself.
const MaxBatchItems = 10000

// MaxProof bounds a Batch's or an Ack's Proof (a signed statement is
// about 3.5 KiB).
const MaxProof = 16 << 10

// BatchKind says what a Batch carries.
type BatchKind uint8

// Batch kinds. The values are part of the wire format.
const (
	BatchMessages BatchKind = 1
	BatchReceipts BatchKind = 2
)

func (k BatchKind) String() string {
	switch k {
	case BatchMessages:
		return "messages"
	case BatchReceipts:
		return "receipts"
	}
	return fmt.Sprintf("batchkind(%d)", uint8(k))
}

// Batch is what the origin site's leader sends to another site: messages of
// one channel (From, To, Precedence), or receipts from site From for
// messages that site To originated.
//
// Received batches own their memory: payloads point into the received
// frame, which nothing else uses.
type Batch struct {
	Kind       BatchKind
	From, To   string           // sites: sender and receiver
	Precedence queue.Precedence // for BatchMessages: the channel's precedence
	Messages   []queue.Message  // BatchMessages only
	Receipts   []queue.Receipt  // BatchReceipts only
	// Proof is the sender's signature of the items (an encoded
	// trust.Signed), at most MaxProof bytes, nil if none. The link
	// carries it and checks only its size: the receiver verifies it.
	Proof []byte
}

// Command is the command that applies b on the receiving site's log,
// stamped now (Unix nanoseconds): OpReceive of b's messages, or OpReceipts
// of its receipts. It shares b's slices. A batch of an unknown kind (only
// one made by hand: a received batch has been checked) is ErrBadBatch.
func (b *Batch) Command(now int64) (*queue.Command, error) {
	cmd := &queue.Command{Time: now}
	switch b.Kind {
	case BatchMessages:
		cmd.Op = queue.OpReceive
		cmd.Receive = &queue.Receive{Origin: b.From, Precedence: b.Precedence, Messages: b.Messages}
	case BatchReceipts:
		cmd.Op = queue.OpReceipts
		cmd.Receipts = &queue.Receipts{From: b.From, Receipts: b.Receipts}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrBadBatch, b.Kind)
	}
	return cmd, nil
}

// Ack answers a Batch.
type Ack struct {
	// Last is cumulative: the highest sequence (or RSeq for receipts) the
	// receiver's site has durably applied for this channel.
	Last uint64
	// Leader is a hint: the receiving site's leader node, "" if unknown.
	Leader string
	// Error, when not empty, says the batch was not applied (e.g. no
	// quorum); retry later.
	Error string
	// Code names the kind of Error in the Codes that serve calls too
	// (Ack.Err rebuilds the error; Codes.Refusal sets it), "" if the
	// receiver named none: an error outside its table, or a receiver of
	// an earlier version.
	Code string
	// Proof is the receiver's signature of what it now holds of the
	// batch (an encoded trust.Signed), at most MaxProof bytes, nil if
	// none. The link carries it; the sender verifies it.
	Proof []byte
}

// Err returns nil if a accepts the batch, else a *CallError with Op
// "batch" and a's text, code and leader hint, wrapping the sentinel of
// a's code in c (nil: the transport's own codes), so that the sender
// branches with errors.Is. It wraps none if the code is "" or unknown
// here: a receiver of another version, whose text is all there is.
func (a *Ack) Err(c *Codes) error {
	if a.Error == "" {
		return nil
	}
	if c == nil {
		c = NewCodes()
	}
	return &CallError{Op: "batch", Code: a.Code, Leader: a.Leader, Msg: a.Error, kind: c.sentinel(a.Code)}
}

// Call is a request for one operation of the called node: within a site
// (a follower relaying to its leader) or between sites (a link test), as
// the operation's Scope in the called node's Routes allows.
type Call struct {
	Op   string
	Body []byte
}

// Reply answers a Call. Error, when not empty, says the call failed; Code
// then names its kind (Codes.Err rebuilds the error) and Leader is the
// called node's hint of its site's leader. Code and Leader may be "".
type Reply struct {
	Body   []byte
	Error  string
	Code   string
	Leader string
}

// Handler serves batches from peers (calls are served by Config.Calls).
// HandleBatch is called concurrently, one goroutine per batch. ctx ends
// when the caller gives up, the connection dies or the Link closes.
//
// from is the authenticated identity of the sender, from its certificate,
// never from frame contents. The Link has already checked that a batch
// comes from another site and names the sender's site as From and ours as
// To.
//
// A returned error is sent back as a refusal coded like a call's error
// reply: Ack.Error, its code in the Routes' Codes (Config.Calls) as
// Ack.Code and the Routes' leader hint (the caller retries); it does not
// close the connection. Handlers must return soon after ctx ends:
// Link.Close waits for them (so a Handler must not call Close itself).
type Handler interface {
	HandleBatch(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error)
}

// check reports whether a batch is self-consistent, which its encoding
// needs: its shape (checkShape) and every item's precedence, every message
// on the batch's channel (the encoding names the channel once). The
// sender checks it all before encoding; the receiver's decoder already
// gives each message the batch's channel and refuses invalid precedences
// and counts, so decodeBatch checks only the shape. A peer that sends an
// inconsistent batch is breaking the protocol. Whether the items are
// acceptable is the receiver's business (queue.Receive.Validate,
// queue.Receipts.Validate), not the link's.
func (b *Batch) check() error {
	if err := b.checkShape(); err != nil {
		return err
	}
	for i := range b.Messages {
		m := &b.Messages[i]
		if m.Origin != b.From || m.Dest != b.To || m.Precedence != b.Precedence {
			return fmt.Errorf("%w: message %d (id %q) is on channel %s->%s/%s, not the batch's %s->%s/%s",
				ErrBadBatch, i, m.ID, m.Origin, m.Dest, m.Precedence, b.From, b.To, b.Precedence)
		}
	}
	for i := range b.Receipts {
		if r := &b.Receipts[i]; !r.Precedence.Valid() {
			return fmt.Errorf("%w: receipt %d has invalid precedence %d", ErrBadBatch, i, r.Precedence)
		}
	}
	return nil
}

// checkShape reports whether the batch has a known kind, a valid
// precedence, at most MaxBatchItems items, all of its kind, and a proof
// of at most MaxProof bytes.
func (b *Batch) checkShape() error {
	if len(b.Proof) > MaxProof {
		return fmt.Errorf("%w: proof of %d bytes (at most %d)", ErrBadBatch, len(b.Proof), MaxProof)
	}
	if !b.Precedence.Valid() {
		return fmt.Errorf("%w: invalid precedence %d", ErrBadBatch, b.Precedence)
	}
	if n := len(b.Messages) + len(b.Receipts); n > MaxBatchItems {
		return fmt.Errorf("%w: %d items (at most %d)", ErrBadBatch, n, MaxBatchItems)
	}
	switch b.Kind {
	case BatchMessages:
		if len(b.Receipts) != 0 {
			return fmt.Errorf("%w: a messages batch carries %d receipts", ErrBadBatch, len(b.Receipts))
		}
	case BatchReceipts:
		if len(b.Messages) != 0 {
			return fmt.Errorf("%w: a receipts batch carries %d messages", ErrBadBatch, len(b.Messages))
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadBatch, b.Kind)
	}
	return nil
}
