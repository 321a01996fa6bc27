package queue

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on names, IDs and keys, so that every stored key is valid for
// bbolt and a command can never fail halfway through a transaction.
const (
	// MaxNameLen is the longest site name.
	MaxNameLen = 255
	// MaxIDLen is the longest message ID.
	MaxIDLen = 255
	// MaxKeyLen is the longest idempotency key.
	MaxKeyLen = 1024
	// MaxMailboxLen is the longest mailbox name.
	MaxMailboxLen = 64
	// MaxTypeLen is the longest media type.
	MaxTypeLen = 255
)

// ValidMailbox reports why mb is not a mailbox name: 1 to 64 bytes of
// lowercase letters, digits, '-' and '_', starting with a letter or
// digit. "" is the default mailbox and valid.
func ValidMailbox(mb string) error {
	if mb == "" {
		return nil
	}
	if len(mb) > MaxMailboxLen {
		return fmt.Errorf("%w: mailbox name longer than %d bytes", ErrInvalid, MaxMailboxLen)
	}
	for i := 0; i < len(mb); i++ {
		c := mb[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%w: mailbox name %q: byte %d (%q) is not a lowercase letter, digit, '-' or '_' (a name starts with a letter or digit)", ErrInvalid, mb, i, c)
		}
	}
	return nil
}

// ValidType reports why t is not a media type a message may carry:
// type/subtype with optional ;parameters, printable ASCII, at most 255
// bytes (RFC 6838's restricted names are not enforced beyond that). ""
// (application/octet-stream) is valid.
func ValidType(t string) error {
	if t == "" {
		return nil
	}
	if len(t) > MaxTypeLen {
		return fmt.Errorf("%w: media type longer than %d bytes", ErrInvalid, MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: media type has byte %#x at %d (printable ASCII only)", ErrInvalid, c, i)
		}
	}
	main, _, _ := strings.Cut(t, ";")
	typ, sub, ok := strings.Cut(strings.TrimSpace(main), "/")
	if !ok || typ == "" || sub == "" || strings.ContainsAny(typ+sub, " /") {
		return fmt.Errorf("%w: media type %q is not type/subtype", ErrInvalid, t)
	}
	return nil
}

// validAttrs checks a message's flags (bit 31 is the encoding's, never a
// message's), mailbox, sender mailbox and type.
func validAttrs(flags uint32, mailbox, from, typ string) error {
	if flags&flagAttrs != 0 {
		return fmt.Errorf("%w: flags %#x: bit 31 is reserved", ErrInvalid, flags)
	}
	if err := ValidMailbox(mailbox); err != nil {
		return err
	}
	if err := ValidMailbox(from); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	return ValidType(typ)
}

// ErrInvalid is wrapped by every validation error: a command, submit item
// or inbound message the state machine rejects without storing anything.
var ErrInvalid = errors.New("queue: invalid")

func validName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty site name", ErrInvalid)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%w: site name longer than %d bytes", ErrInvalid, MaxNameLen)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: site name contains a 0 byte", ErrInvalid)
	}
	return nil
}

func validID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty message id", ErrInvalid)
	}
	return validText("message id", id, MaxIDLen)
}

func validKey(k string) error { return validText("idempotency key", k, MaxKeyLen) }

// validText refuses a text field (what) longer than max bytes or with
// characters a terminal or a log could misread: invalid UTF-8 and control
// characters (C0, DEL, C1: escapes, CR, LF). IDs and keys are printed by
// tools and logs, and come from peers.
func validText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s longer than %d bytes (%d)", ErrInvalid, what, max, len(s))
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("%w: %s has invalid UTF-8 at byte %d", ErrInvalid, what, i)
		case unicode.IsControl(r):
			return fmt.Errorf("%w: %s contains control character %U at byte %d", ErrInvalid, what, r, i)
		}
	}
	return nil
}

func validPrecedence(p Precedence) error {
	if !p.Valid() {
		return fmt.Errorf("%w: precedence %d", ErrInvalid, uint8(p))
	}
	return nil
}

// Validate reports why the state machine would reject the item (wrapping
// [ErrInvalid]), or nil. Callers may check items before proposing them.
func (it *SubmitItem) Validate() error {
	if err := validID(it.ID); err != nil {
		return err
	}
	if err := validKey(it.Key); err != nil {
		return err
	}
	if err := validName(it.Dest); err != nil {
		return fmt.Errorf("dest: %w", err)
	}
	if err := validPrecedence(it.Precedence); err != nil {
		return err
	}
	if it.Flags&FlagTombstone != 0 {
		return fmt.Errorf("%w: a submitted message cannot be a tombstone", ErrInvalid)
	}
	if it.Flags&FlagNotice != 0 {
		return fmt.Errorf("%w: a submitted message cannot be an expiry notice", ErrInvalid)
	}
	if err := validAttrs(it.Flags, it.Mailbox, it.From, it.Type); err != nil {
		return err
	}
	if it.Flags&FlagSealed != 0 {
		return validSealed(it.Payload)
	}
	return nil
}

// Validate is the one check of an inbound batch of messages: it reports
// why site should refuse r (wrapping [ErrInvalid]), or nil. It refuses
// what the state machine refuses when applying r (a bad origin or
// precedence, a message of another channel or without a valid ID, key
// or Seq, evidence whose leaves are not one per message) and, before
// anything is proposed, a batch whose sequence
// numbers are not consecutive or with a payload over maxPayload bytes
// (maxPayload <= 0: no limit), a limit of this site's configuration,
// or one with a message flagged as an expiry notice (FlagNotice: only
// this site makes notices, for its own inbox; a peer's would escape the
// read objectives, unread.go).
//
// The notice check is not in valid: apply has accepted such messages
// before (keeping them out of the unread index), and a log holding one
// must replay as it did. Refusing them here, before anything is
// proposed, keeps every new one out of the log.
func (r *Receive) Validate(site string, maxPayload int64) error {
	if err := r.valid(site); err != nil {
		return err
	}
	for i := range r.Messages {
		m := &r.Messages[i]
		switch {
		case m.Flags&FlagNotice != 0:
			return fmt.Errorf("%w: message %d (id %q) from %s is flagged as an expiry notice (only this site makes those)", ErrInvalid, i, m.ID, r.Origin)
		case i > 0 && m.Seq != r.Messages[i-1].Seq+1:
			return fmt.Errorf("%w: message %d (id %q) has sequence %d, want %d", ErrInvalid, i, m.ID, m.Seq, r.Messages[i-1].Seq+1)
		case maxPayload > 0 && int64(len(m.Payload)) > maxPayload:
			return fmt.Errorf("%w: message %d (id %q) is %d bytes, over this site's limit of %d", ErrInvalid, i, m.ID, len(m.Payload), maxPayload)
		}
	}
	return nil
}

// valid is the state machine's part of Validate, checked when r is
// applied: deterministic, and never stricter than what earlier versions
// applied, so that every version replays a log the same.
func (r *Receive) valid(site string) error {
	if err := validName(r.Origin); err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	if err := validPrecedence(r.Precedence); err != nil {
		return err
	}
	if err := r.evidenceFault(); err != nil { // evidence.go
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	want := Channel{r.Origin, site, r.Precedence}
	for i := range r.Messages {
		m := &r.Messages[i]
		switch {
		case m.Origin != r.Origin || m.Dest != site || m.Precedence != r.Precedence:
			return fmt.Errorf("%w: message %d (id %q) is of channel %s, not the batch's %s", ErrInvalid, i, m.ID,
				Channel{m.Origin, m.Dest, m.Precedence}, want)
		case m.Seq == 0:
			return fmt.Errorf("%w: message %q has sequence 0", ErrInvalid, m.ID)
		}
		if err := validID(m.ID); err != nil {
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, err)
		}
		if err := validKey(m.Key); err != nil {
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, err)
		}
		if err := validAttrs(m.Flags, m.Mailbox, m.From, m.Type); err != nil {
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, err)
		}
	}
	return r.validRefusals() // refuse.go
}

// Validate is the one check of an inbound batch of receipts: it reports
// why the site should refuse r (wrapping [ErrInvalid]), or nil: a bad
// sender name, RSeqs that are zero or not consecutive, an invalid
// precedence, an ID (which may be empty) or a refusal reason that is too
// long or not printable, or evidence whose leaves are not one per receipt.
func (r *Receipts) Validate() error {
	if err := validName(r.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := r.evidenceFault(); err != nil { // evidence.go
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var prev uint64
	for i := range r.Receipts {
		rc := &r.Receipts[i]
		switch {
		case rc.RSeq == 0 || (i > 0 && rc.RSeq != prev+1):
			return fmt.Errorf("%w: receipt %d is malformed (rseq %d after %d)", ErrInvalid, i, rc.RSeq, prev)
		case !rc.Precedence.Valid():
			return fmt.Errorf("%w: receipt %d (rseq %d) has invalid precedence %d", ErrInvalid, i, rc.RSeq, uint8(rc.Precedence))
		}
		if err := validText("message id", rc.ID, MaxIDLen); err != nil {
			return fmt.Errorf("receipt %d (rseq %d): %w", i, rc.RSeq, err)
		}
		if err := validText("refusal reason", rc.Refused, MaxRefusalLen); err != nil {
			return fmt.Errorf("receipt %d (rseq %d): %w", i, rc.RSeq, err)
		}
		prev = rc.RSeq
	}
	return nil
}
