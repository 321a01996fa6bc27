package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// Mailboxes not configured: a mailbox removed from the config while
// messages waited for it (or one another site sent to before its list
// was known here). Its messages stay readable by root; the node reports
// them at start (a warning each) and as an alarm while they wait.

// unconfiguredMailboxes returns the mailboxes (display names, sorted)
// that hold unread messages (unread, as queue.Store.MailboxUnread counts
// them) and are not in m.
func unconfiguredMailboxes(unread map[string]int, m *mailboxes) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(unread)) {
		if unread[name] > 0 && (m == nil || m.get(storedMailbox(name)) == nil) {
			out = append(out, name)
		}
	}
	return out
}

// unconfiguredWords says what waits in an unconfigured mailbox and how
// to read it.
func unconfiguredWords(name string, n int) string {
	return fmt.Sprintf("mailbox %s is not configured: %d unread messages wait for it; root can read them with hotlinectl recv --mailbox %s", name, n, name)
}

// reportUnconfiguredMailboxes logs a warning for each unconfigured
// mailbox holding unread messages.
func reportUnconfiguredMailboxes(log *slog.Logger, unread map[string]int, m *mailboxes) {
	for _, name := range unconfiguredMailboxes(unread, m) {
		log.Warn(unconfiguredWords(name, unread[name]), "mailbox", name, "unread", unread[name])
	}
}
