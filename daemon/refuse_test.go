package daemon

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

// TestRefusals: the destination refuses a message for a mailbox it does
// not have or of a type the mailbox does not take; never a tombstone, a
// link test or a drill; reasons stay within queue.MaxRefusalLen.
func TestRefusals(t *testing.T) {
	m, err := newMailboxes([]MailboxConfig{{Name: "cert", Types: []string{"application/stix+json;version=2.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	long := "text/" + strings.Repeat("x", queue.MaxTypeLen-5)
	msgs := []queue.Message{
		{ID: "a"},                    // default mailbox: implied
		{ID: "b", Mailbox: "nosuch"}, // unknown
		{ID: "c", Mailbox: "cert", Type: "text/plain"}, // type not taken
		{ID: "d", Mailbox: "cert", Type: "application/STIX+json; version=2.1"},
		{ID: "e", Mailbox: "cert"}, // octet-stream
		{ID: "f", Mailbox: "nosuch", Flags: queue.FlagTombstone},
		{ID: "g", Mailbox: "nosuch", Flags: queue.FlagLinkTest},
		{ID: "h", Mailbox: "nosuch", Flags: queue.FlagDrill},
		{ID: "i", Mailbox: "cert", Type: long},
	}
	got := m.refusals(msgs)
	want := []queue.Refusal{
		{Index: 1, Reason: "mailbox nosuch does not exist"},
		{Index: 2, Reason: "mailbox cert does not accept type text/plain"},
		{Index: 4, Reason: "mailbox cert does not accept type application/octet-stream"},
		{Index: 8, Reason: ("mailbox cert does not accept type " + long)[:queue.MaxRefusalLen]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("refusals = %+v\nwant %+v", got, want)
	}
	r := &queue.Receive{Origin: "alpha", Precedence: queue.Routine, Refused: got}
	for i := range msgs {
		msgs[i].Origin, msgs[i].Dest, msgs[i].Precedence, msgs[i].Seq = "alpha", "bravo", queue.Routine, uint64(i+1)
	}
	r.Messages = msgs
	if err := r.Validate("bravo", 0); err != nil {
		t.Fatalf("the refusals do not validate: %v", err)
	}
}
