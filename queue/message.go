package queue

import (
	"errors"
	"fmt"
	"strings"
)

// Precedence orders channels, highest first (ACP 121): a higher channel is
// never queued behind a lower one.
type Precedence uint8

// The four precedences, highest first. The numeric value is part of the
// storage and wire format.
const (
	Flash Precedence = iota
	Immediate
	Priority
	Routine
)

// Precedences lists every precedence, highest first.
var Precedences = []Precedence{Flash, Immediate, Priority, Routine}

var precedenceNames = [...]string{"flash", "immediate", "priority", "routine"}

// ErrBadPrecedence is returned by ParsePrecedence for an unknown name.
var ErrBadPrecedence = errors.New("unknown precedence (want flash, immediate, priority or routine)")

// ParsePrecedence parses "flash", "immediate", "priority" or "routine"
// (case-insensitive). The empty string is routine.
func ParsePrecedence(s string) (Precedence, error) {
	if s == "" {
		return Routine, nil
	}
	for i, n := range precedenceNames {
		if strings.EqualFold(s, n) {
			return Precedence(i), nil
		}
	}
	return 0, fmt.Errorf("%q: %w", s, ErrBadPrecedence)
}

// Valid reports whether p is one of the four precedences.
func (p Precedence) Valid() bool { return int(p) < len(precedenceNames) }

func (p Precedence) String() string {
	if !p.Valid() {
		return fmt.Sprintf("precedence(%d)", uint8(p))
	}
	return precedenceNames[p]
}

// MarshalText encodes p as its name.
func (p Precedence) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("invalid precedence %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText decodes a precedence name.
func (p *Precedence) UnmarshalText(b []byte) error {
	v, err := ParsePrecedence(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// State is where a message is in its life.
type State uint8

// Message states. Queued: durable at the origin. Delivered: durable at the
// destination. Read: acknowledged by a destination client. Expired: its TTL
// ran out before delivery; a tombstone keeps the channel gap-free. Held:
// durable at the origin but not in its channel, waiting for two-person
// release (held.go); it has no sequence number until released, when it
// becomes Queued. Refused: the destination holds it but refused it (a
// mailbox it does not have, or a type the mailbox does not accept;
// Receive.Refused): it never enters the inbox, and its origin learns the
// reason from a receipt. Read, Expired and Refused are final. (The
// numbers are stored: Held and Refused came last.)
const (
	Queued State = iota + 1
	Delivered
	Read
	Expired
	Held
	Refused
)

var stateNames = map[State]string{Queued: "queued", Delivered: "delivered", Read: "read", Expired: "expired", Held: "held", Refused: "refused"}

// AtLeast reports whether a message in state s has got as far as want:
// the states are ordered held, queued, delivered, read (read implies
// delivered; a message need not have been held); expired branches off
// after queued (an expired message was queued, and is never delivered or
// read) and refused after delivered (a refused message is held by the
// destination, and is never read).
func (s State) AtLeast(want State) bool {
	switch {
	case s < Queued || s > Refused || want < Queued || want > Refused:
		return false // unknown states are not ordered
	case s == want:
		return true
	case s == Held:
		return false
	case want == Held:
		return true
	case s == Expired:
		return want == Queued
	case s == Refused:
		return want == Queued || want == Delivered
	case want == Expired || want == Refused:
		return false
	}
	return s > want
}

// Final reports whether no state follows s: read, expired or refused.
func (s State) Final() bool { return s == Read || s == Expired || s == Refused }

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses "queued", "delivered", "read", "expired", "held" or
// "refused".
func ParseState(s string) (State, error) {
	for k, v := range stateNames {
		if strings.EqualFold(s, v) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want queued, delivered, read, expired, held or refused)", s)
}

// MarshalText encodes s as its name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a state name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Message flags. They travel with the message.
const (
	// FlagTombstone marks a message that expired before delivery: its
	// payload is gone, its sequence number still counts.
	FlagTombstone uint32 = 1 << iota
	// FlagLinkTest marks a periodic link-test message: delivered like any
	// other, never put into the application inbox.
	FlagLinkTest
	// FlagDrill marks drill canary traffic: never put into the inbox.
	FlagDrill
	// FlagSealed marks a payload sealed to the destination site's key (an
	// envelope of package transport/trust), opened only by a destination
	// client's read.
	FlagSealed
)

// Message is the unit carried from an origin site to a destination site.
// All times are Unix nanoseconds taken from commands, never from the clock
// of the node applying them.
type Message struct {
	ID          string     `json:"id"`
	Origin      string     `json:"origin"`
	Dest        string     `json:"dest"`
	Precedence  Precedence `json:"precedence"`
	Seq         uint64     `json:"seq"`
	Key         string     `json:"key,omitempty"`
	Payload     []byte     `json:"payload,omitempty"`
	Flags       uint32     `json:"flags,omitempty"`
	SubmittedAt int64      `json:"submitted_at"`
	ExpiresAt   int64      `json:"expires_at,omitempty"`
	// Mailbox is the destination site's mailbox it is addressed to, From
	// the origin site's mailbox it was sent from ("" for both: the
	// default mailbox, DefaultMailbox), Type its media type (""
	// application/octet-stream). They travel with the message and are
	// signed with it.
	Mailbox string `json:"mailbox,omitempty"`
	From    string `json:"from,omitempty"`
	Type    string `json:"type,omitempty"`
}

// DefaultMailbox is the name of a site's default mailbox, the one a
// message addressed to a site alone goes to. Messages store it as "".
const DefaultMailbox = "default"

// MailboxName returns mb, or DefaultMailbox for "".
func MailboxName(mb string) string {
	if mb == "" {
		return DefaultMailbox
	}
	return mb
}

// HasAttrs reports whether m carries a mailbox, sender mailbox or type:
// its encodings then hold an attribute section (flagAttrs).
func (m *Message) HasAttrs() bool { return m.Mailbox != "" || m.From != "" || m.Type != "" }

// flagAttrs is set in a message's encoded flags (log, link, stored
// record) when an attribute section (mailbox, from, type) follows; it is
// never set in Message.Flags. Messages without attributes encode as they
// did before mailboxes existed.
const flagAttrs uint32 = 1 << 31

// Tombstone reports whether m is an expired placeholder without payload.
func (m *Message) Tombstone() bool { return m.Flags&FlagTombstone != 0 }

// Channel names a stream of messages between two sites at one precedence.
// Sequence numbers are gap-free within a channel, starting at 1.
type Channel struct {
	Origin     string     `json:"origin"`
	Dest       string     `json:"dest"`
	Precedence Precedence `json:"precedence"`
}

func (c Channel) String() string { return c.Origin + "->" + c.Dest + "/" + c.Precedence.String() }

// Receipt says that a destination client read message Seq of channel
// (origin, dest=the receipt's sender, Precedence), or, with Refused set,
// that the destination refused it for that reason (at ReadAt). RSeq
// numbers receipts gap-free per (reader site, origin site) so they can be
// acked cumulatively.
type Receipt struct {
	RSeq       uint64     `json:"rseq"`
	Precedence Precedence `json:"precedence"`
	Seq        uint64     `json:"seq"`
	ID         string     `json:"id"`
	ReadAt     int64      `json:"read_at"`
	Refused    string     `json:"refused,omitempty"`
}
