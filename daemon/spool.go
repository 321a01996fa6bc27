package daemon

import (
	"fmt"
	"path/filepath"
)

// Spool directories (config [[mailboxes]] spool_out, spool_in): a program
// that cannot speak HTTP over the socket hands files to a mailbox and
// takes its messages as files. spool_out.go submits an outgoing
// directory's files, spool_in.go writes an incoming Maildir. Each runs on
// the node whose config sets its key (the config is per node: set it on
// the node whose disk the program uses), from Open until Close.

// startSpools starts the spool directories of this node's mailboxes, on
// n.wg: they stop when the node's context ends.
func (n *Node) startSpools() {
	m := n.cfg.mailboxes()
	for _, name := range m.names {
		mb := m.get(storedMailbox(name))
		if mb.cfg.SpoolOut != "" {
			s, err := newSpoolOut(mb, n.cfg.MaxMessageSize, n.sender.send, n.log)
			if err != nil { // Validate checked the keys
				n.log.Error("spool_out: not started", "mailbox", name, "err", err)
			} else {
				n.wg.Go(func() { s.run(n.ctx) })
			}
		}
		if mb.cfg.SpoolIn != "" {
			s := &spoolIn{dir: mb.cfg.SpoolIn, mailbox: mb.name, node: n.cfg.Node, store: n.store,
				open: n.sealer.open, propose: n.commit.proposeRYW, timeout: n.cfg.SubmitTimeout.Duration,
				log: n.log.With("component", "spool_in", "mailbox", name, "dir", mb.cfg.SpoolIn), skipped: map[string]bool{}}
			n.wg.Go(func() { s.run(n.ctx) })
		}
	}
}

// spoolDirConflict finds a spool directory configured twice (two
// mailboxes', or one mailbox's spool_out and spool_in): it returns the
// key of the second use and why, or "".
func spoolDirConflict(cfgs []MailboxConfig) (key, msg string) {
	used := map[string]string{} // clean path -> the key that named it first
	for i, c := range cfgs {
		for _, d := range []struct{ key, dir string }{{"spool_out", c.SpoolOut}, {"spool_in", c.SpoolIn}} {
			if d.dir == "" {
				continue
			}
			k := fmt.Sprintf("mailboxes[%d].%s", i, d.key)
			p := filepath.Clean(d.dir)
			if first, ok := used[p]; ok {
				return k, fmt.Sprintf("%q is already %s; each spool directory serves one mailbox and one direction", d.dir, first)
			}
			used[p] = k
		}
	}
	return "", ""
}
