package daemon

import (
	"fmt"

	"github.com/hotline-link/hotline/queue"
)

// Refusals at the destination (queue/refuse.go). The node that takes an
// inbound batch decides, from its mailbox policy, which of the batch's
// messages this site refuses, and the decision travels in the command
// (queue.Receive.Refused), so that every node of the site applies the
// same whatever its own configuration says.

// refusals returns the refusals of msgs by this site's mailbox policy:
// a message for a mailbox the site does not have, or of a media type its
// mailbox does not take. Tombstones, link-test and drill messages never
// enter an inbox and are never refused.
func (m *mailboxes) refusals(msgs []queue.Message) []queue.Refusal {
	var out []queue.Refusal
	for i := range msgs {
		msg := &msgs[i]
		if msg.Flags&(queue.FlagTombstone|queue.FlagLinkTest|queue.FlagDrill) != 0 {
			continue
		}
		if reason := m.refusal(msg.Mailbox, msg.Type); reason != "" {
			out = append(out, queue.Refusal{Index: i, Reason: reason})
		}
	}
	return out
}

// refusal is why a message for mailbox mb (stored name) of media type t
// is refused here, or "" when it is taken. Names and types are printable
// ASCII (queue.ValidMailbox, ValidType), so the reason is printable and
// cut to queue.MaxRefusalLen on a byte boundary.
func (m *mailboxes) refusal(mb, t string) string {
	var reason string
	switch box := m.get(mb); {
	case box == nil:
		reason = fmt.Sprintf("mailbox %s does not exist", queue.MailboxName(mb))
	case !box.typeAllowed(t):
		reason = fmt.Sprintf("mailbox %s does not accept type %s", queue.MailboxName(mb), typeName(t))
	default:
		return ""
	}
	if len(reason) > queue.MaxRefusalLen {
		reason = reason[:queue.MaxRefusalLen]
	}
	return reason
}
