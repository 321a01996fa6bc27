package forward

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/trust"
)

// Errors of proofs that do not hold, besides trust's own (ErrMalformed,
// ErrUnknownKey, ErrBadSignature). Both wrap trust.ErrBadSignature, so a
// caller that only asks whether a signature failed asks that.
var (
	// ErrNoProof: a batch or an ack that must carry a signed statement
	// carries none.
	ErrNoProof = fmt.Errorf("%w: no signed statement", trust.ErrBadSignature)
	// ErrMismatch: a signed statement is not about what it came with
	// (another kind, site, channel, range, or other items).
	ErrMismatch = fmt.Errorf("%w: the statement is not about these items", trust.ErrBadSignature)
)

// Verifier checks a signed statement's signature with the pinned key it
// names; a *trust.Keyring is one.
type Verifier interface {
	Verify(s *trust.Signed) error
}

var _ Verifier = (*trust.Keyring)(nil)

// readPrecedence is the precedence a KindRead statement names: receipts
// are of every precedence, their queue is one per origin site.
const readPrecedence = queue.Flash

// Notary signs what this site states on the link and checks what other
// sites state, with trust's statements (package transport/trust): the
// origin's forwarder signs each messages batch (KindMessages) and checks
// the destination's delivery proof in its ack (KindDelivered); the
// destination checks the batch before it proposes anything and signs the
// delivery proof once its site committed; a reader site's ReceiptSender
// signs its receipts (KindRead), which the origin checks. The site's
// leader checks the same again on every inbound command a follower
// relays (CheckCommand), so that one node's stolen key cannot have a
// forged batch applied.
//
// A proof that does not hold is an error naming the site, the key id and
// what failed, wrapping ErrNoProof, ErrMismatch or trust's ErrMalformed,
// ErrUnknownKey or ErrBadSignature (Reason names which). A Notary only
// reads its keys: it is safe for concurrent use.
type Notary struct {
	Key  *trust.SigningKey // this site's; Key.Site is this site
	Ring Verifier          // every site's pinned public keys
}

// claim is what a statement must say to be the proof of some items.
type claim struct {
	kind        trust.Kind
	site, peer  string // the signer, and the other site of the channel
	prec        queue.Precedence
	first, last uint64
}

// check decodes proof and checks that it says c about leaves and that its
// signature holds.
func (n *Notary) check(proof []byte, c claim, leaves []trust.Hash) (*trust.Signed, error) {
	what := fmt.Sprintf("%s proof of %s (%s, %d..%d)", c.kind, c.site, c.prec, c.first, c.last)
	if c.kind == trust.KindRead {
		what = fmt.Sprintf("read proof of %s (receipts %d..%d)", c.site, c.first, c.last)
	}
	if len(proof) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNoProof)
	}
	s, err := trust.DecodeSigned(proof)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	got := claim{s.Kind, s.Site, s.Peer, s.Precedence, s.First, s.Last}
	if got != c {
		return nil, fmt.Errorf("%s: %w: key %s signed a %s statement of %s about %s/%s %d..%d",
			what, ErrMismatch, s.KeyID, s.Kind, s.Site, s.Peer, s.Precedence, s.First, s.Last)
	}
	if s.Covers(leaves) != nil {
		return nil, fmt.Errorf("%s: key %s: %w: its Merkle root (of %d leaves) is not that of these %d items",
			what, s.KeyID, ErrMismatch, s.Count, len(leaves))
	}
	if err := n.Ring.Verify(s); err != nil { // names the key
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// Reason names why a proof did not hold, for metrics: "missing",
// "mismatch", "malformed", "unknown_key" or "bad_signature"; "" if err is
// none of Notary's errors.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNoProof):
		return "missing"
	case errors.Is(err, ErrMismatch):
		return "mismatch"
	case errors.Is(err, trust.ErrMalformed):
		return "malformed"
	case errors.Is(err, trust.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, trust.ErrBadSignature):
		return "bad_signature"
	}
	return ""
}

// Reasons are Reason's values, for metrics that start every label at 0.
var Reasons = []string{"missing", "mismatch", "malformed", "unknown_key", "bad_signature"}

// Sign signs b (a batch from this site) and sets b.Proof: a KindMessages
// statement of its messages, or a KindRead statement of its receipts,
// stamped now (Unix nanoseconds). It returns the leaves it signed. An
// empty batch (a resync probe) is left unsigned.
func (n *Notary) Sign(b *transport.Batch, now int64) ([]trust.Hash, error) {
	var (
		leaves      []trust.Hash
		kind        trust.Kind
		prec        queue.Precedence
		first, last uint64
	)
	switch {
	case len(b.Messages) > 0:
		leaves, kind, prec = trust.MessageLeaves(b.Messages), trust.KindMessages, b.Precedence
		first, last = b.Messages[0].Seq, b.Messages[len(b.Messages)-1].Seq
	case len(b.Receipts) > 0:
		leaves, kind, prec = trust.ReceiptLeaves(n.Key.Site, b.To, b.Receipts), trust.KindRead, readPrecedence
		first, last = b.Receipts[0].RSeq, b.Receipts[len(b.Receipts)-1].RSeq
	default:
		return nil, nil
	}
	proof, err := n.sign(kind, b.To, prec, first, last, leaves, now)
	if err != nil {
		return nil, err
	}
	b.Proof = proof
	return leaves, nil
}

func (n *Notary) sign(kind trust.Kind, peer string, prec queue.Precedence, first, last uint64, leaves []trust.Hash, now int64) ([]byte, error) {
	st, err := trust.NewStatement(kind, peer, prec, first, last, leaves, now)
	if err != nil {
		return nil, err
	}
	s, err := trust.SignStatement(n.Key, st)
	if err != nil {
		return nil, fmt.Errorf("sign %s statement to %s: %w", kind, peer, err)
	}
	return s.Encode(), nil
}

// Command is b's command (transport.Batch.Command), for b a batch from
// another site to this one, carrying b's proof as its evidence once the
// proof holds (Evidence). Nothing is proposed of a batch whose proof does
// not hold.
func (n *Notary) Command(b *transport.Batch, now int64) (*queue.Command, error) {
	cmd, err := b.Command(now)
	if err != nil {
		return nil, err
	}
	ev, err := n.Evidence(b)
	if err != nil {
		return nil, err
	}
	switch {
	case cmd.Receive != nil:
		cmd.Receive.Evidence = ev
	case cmd.Receipts != nil:
		cmd.Receipts.Evidence = ev
	}
	return cmd, nil
}

// Evidence checks the proof of b, a batch from another site to this one,
// and returns it as the evidence its command carries (queue.Receive's or
// queue.Receipts' Evidence; leaf i is about item i). An empty batch (a
// resync probe) has none: nil, nil.
func (n *Notary) Evidence(b *transport.Batch) (*queue.Evidence, error) {
	var ev *queue.Evidence
	switch {
	case len(b.Messages) > 0:
		ev = messagesEvidence(b.Proof, b.Messages)
	case len(b.Receipts) > 0:
		ev = receiptsEvidence(b.Proof, b.From, n.Key.Site, b.Receipts)
	default:
		return nil, nil
	}
	c := claim{kind: trust.KindMessages, site: b.From, peer: n.Key.Site, prec: b.Precedence, first: ev.First}
	if len(b.Messages) > 0 {
		c.last = b.Messages[len(b.Messages)-1].Seq
	} else {
		c.kind, c.prec, c.last = trust.KindRead, readPrecedence, b.Receipts[len(b.Receipts)-1].RSeq
	}
	if err := n.checkErr(b.Proof, c, ev.Leaves); err != nil {
		return nil, err
	}
	return ev, nil
}

func messagesEvidence(proof []byte, ms []queue.Message) *queue.Evidence {
	return &queue.Evidence{Statement: proof, First: ms[0].Seq, Leaves: toLeaves(trust.MessageLeaves(ms))}
}

func receiptsEvidence(proof []byte, reader, origin string, rs []queue.Receipt) *queue.Evidence {
	return &queue.Evidence{Statement: proof, First: rs[0].RSeq, Leaves: toLeaves(trust.ReceiptLeaves(reader, origin, rs))}
}

// CheckCommand checks the evidence of an inbound command (OpReceive,
// OpReceipts) as Evidence checked its batch: it is there unless the
// command has no items, its leaves are those of the command's items, and
// its statement says so and holds. Each proof a DeliveredCmd carries
// must hold too: the destination's KindDelivered statement (required)
// and this site's own KindMessages statement (if any), each about the
// leaves it names. (Whether a Delivered needs proofs at all, and that
// they continue what the state records, is the caller's to check.) Commands of other operations carry
// none: nil.
func (n *Notary) CheckCommand(cmd *queue.Command) error {
	switch {
	case cmd.Receive != nil:
		r := cmd.Receive
		if len(r.Messages) == 0 {
			return noEvidence(r.Evidence)
		}
		want := messagesEvidence(nil, r.Messages)
		return n.checkEvidence(r.Evidence, want, claim{trust.KindMessages, r.Origin, n.Key.Site, r.Precedence,
			want.First, r.Messages[len(r.Messages)-1].Seq})
	case cmd.Receipts != nil:
		r := cmd.Receipts
		if len(r.Receipts) == 0 {
			return noEvidence(r.Evidence)
		}
		want := receiptsEvidence(nil, r.From, n.Key.Site, r.Receipts)
		return n.checkEvidence(r.Evidence, want, claim{trust.KindRead, r.From, n.Key.Site, readPrecedence,
			want.First, r.Receipts[len(r.Receipts)-1].RSeq})
	case cmd.Delivered != nil:
		d := cmd.Delivered
		for _, p := range d.Proofs {
			for _, e := range []struct {
				ev   *queue.Evidence
				kind trust.Kind
				site string
				peer string
			}{{p.Evidence, trust.KindDelivered, d.Dest, n.Key.Site}, {p.Sent, trust.KindMessages, n.Key.Site, d.Dest}} {
				if e.ev == nil {
					if e.kind == trust.KindDelivered {
						return fmt.Errorf("delivery proof of %s: %w", d.Dest, ErrNoProof)
					}
					continue
				}
				if len(e.ev.Leaves) == 0 {
					return fmt.Errorf("%s evidence of %s without leaves: %w", e.kind, e.site, ErrMismatch)
				}
				last := e.ev.First + uint64(len(e.ev.Leaves)) - 1
				if _, err := n.check(e.ev.Statement, claim{e.kind, e.site, e.peer, d.Precedence, e.ev.First, last}, toHashes(e.ev.Leaves)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func noEvidence(ev *queue.Evidence) error {
	if ev != nil {
		return fmt.Errorf("evidence of a command without items: %w", ErrMismatch)
	}
	return nil
}

// checkEvidence checks that ev has want's first item and leaves, and a
// statement saying c about them that holds.
func (n *Notary) checkEvidence(ev, want *queue.Evidence, c claim) error {
	if ev == nil {
		return n.checkErr(nil, c, want.Leaves)
	}
	if ev.First != want.First || !slices.Equal(ev.Leaves, want.Leaves) {
		return fmt.Errorf("%s evidence of %s: %w: its leaves (from %d, %d of them) are not those of the command's items (from %d, %d)",
			c.kind, c.site, ErrMismatch, ev.First, len(ev.Leaves), want.First, len(want.Leaves))
	}
	return n.checkErr(ev.Statement, c, want.Leaves)
}

func (n *Notary) checkErr(proof []byte, c claim, leaves [][32]byte) error {
	_, err := n.check(proof, c, toHashes(leaves))
	return err
}

// toHashes views queue's leaves as trust's (the same 32 bytes).
func toHashes(ls [][32]byte) []trust.Hash {
	out := make([]trust.Hash, len(ls))
	for i, l := range ls {
		out[i] = l
	}
	return out
}

// SignDelivered signs, at the destination of a messages batch whose
// command (Command's) its site committed up to last, the delivery proof
// for the batch's ack: a KindDelivered statement of the messages of the
// command with a sequence up to last. None of them (the batch starts
// beyond last), or not a receive with evidence: nil, nil.
func (n *Notary) SignDelivered(cmd *queue.Command, last uint64, now int64) ([]byte, error) {
	r := cmd.Receive
	if r == nil || r.Evidence == nil {
		return nil, nil
	}
	k := held(r.Messages, last)
	if k == 0 {
		return nil, nil
	}
	return n.sign(trust.KindDelivered, r.Origin, r.Precedence, r.Messages[0].Seq, r.Messages[k-1].Seq, toHashes(r.Evidence.Leaves[:k]), now)
}

// held is how many of ms (consecutive sequences) are at or below last.
func held(ms []queue.Message, last uint64) int {
	k, _ := slices.BinarySearchFunc(ms, last+1, func(m queue.Message, seq uint64) int {
		switch {
		case m.Seq < seq:
			return -1
		case m.Seq > seq:
			return 1
		}
		return 0
	})
	return k
}

// Delivery is a destination's proof that it holds messages of a batch
// this site sent, as recorded on the site's log (a
// queue.DeliveredProof).
type Delivery struct {
	UpTo     uint64          // the last message the proof covers
	Evidence *queue.Evidence // its KindDelivered statement and the leaves it covers
	Sent     *queue.Evidence // this site's KindMessages statement of the batch and all its leaves
}

// CheckDelivered checks the delivery proof of ack, the destination's
// answer to b (a messages batch this site sent, signed by Sign, whose
// leaves are leaves): it must be a KindDelivered statement of b's
// destination about the messages of b up to ack.Last (the delivery is
// recorded up to the last of them, not beyond: the proof covers no
// more). An ack below b's first message proves nothing and needs no
// proof: nil, nil.
func (n *Notary) CheckDelivered(b *transport.Batch, leaves []trust.Hash, ack *transport.Ack) (*Delivery, error) {
	k := held(b.Messages, ack.Last)
	if k == 0 {
		return nil, nil
	}
	first := b.Messages[0].Seq
	c := claim{trust.KindDelivered, b.To, n.Key.Site, b.Precedence, first, b.Messages[k-1].Seq}
	if _, err := n.check(ack.Proof, c, leaves[:k]); err != nil {
		return nil, err
	}
	return &Delivery{UpTo: c.last,
		Evidence: &queue.Evidence{Statement: ack.Proof, First: first, Leaves: toLeaves(leaves[:k])},
		Sent:     &queue.Evidence{Statement: b.Proof, First: first, Leaves: toLeaves(leaves)}}, nil
}

func toLeaves(hs []trust.Hash) [][32]byte {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}
