package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// spoolIn writes one mailbox's messages into its incoming spool directory
// (spool_in), Maildir-style, and acknowledges each once its file is
// durable.
//
// For each unread message of the mailbox (in this node's copy of the
// inbox, woken by store.InboxChanged) it opens the payload, writes
// tmp/ID, fsyncs it, renames it to new/ID and, once the page's files are
// all renamed, fsyncs new/ and only then proposes one MarkRead for them
// (By: the actor "spool:MAILBOX"). A file in new/ is thus always whole,
// and a message is acknowledged only when its file survives a crash. After
// a crash between the rename and the ack the message is still unread: its
// new/ID, or cur/ID or cur/ID:FLAGS (where a Maildir reader moves it), is
// found, new/ (and cur/) fsynced, and it is acknowledged without being
// written again. A message whose payload does not open is not written
// (the sealer logs it and raises its alarm) and stays unread.
type spoolIn struct {
	dir     string
	mailbox string // stored name
	node    string
	store   *queue.Store
	open    func(*queue.Message) ([]byte, error)                         // sealer.open
	propose func(context.Context, *queue.Command) (*queue.Result, error) // committer.proposeRYW
	timeout time.Duration                                                // submit_timeout
	log     *slog.Logger

	skipped map[string]bool // ids already logged as not written (bounded)
}

const (
	spoolInPage      = 64
	spoolInPageBytes = 4 << 20
	spoolInRescan    = 30 * time.Second
)

// spoolActor is a mailbox's spool as the audit log names it: who
// acknowledged what spool_in wrote, who submitted what spool_out sent
// (for a held message). name is the mailbox's display name.
func spoolActor(name string) queue.Actor {
	return queue.Actor{UID: -1, PID: -1, User: "spool:" + name}
}

// run writes the mailbox's messages until ctx ends.
func (s *spoolIn) run(ctx context.Context) {
	for _, d := range []string{"", "tmp", "new", "cur"} {
		if err := makeSpoolDir(filepath.Join(s.dir, d)); err != nil {
			s.log.Error("spool_in: cannot create the Maildir; not spooling", "err", err)
			return
		}
	}
	s.cleanTmp()
	s.log.Info("spool_in: writing the mailbox's messages")
	after, backoff := uint64(0), time.Duration(0)
	rescan := time.NewTicker(spoolInRescan)
	defer rescan.Stop()
	for ctx.Err() == nil {
		changed := s.store.InboxChanged()
		next, n, err := s.page(ctx, after)
		if err != nil {
			// Start over from the first unread message after a pause.
			backoff = min(max(2*backoff, time.Second), spoolMaxBackoff)
			s.log.Warn("spool_in: retrying", "in", backoff, "err", err)
			after = 0
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff, after = 0, next
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-rescan.C:
			after = 0 // messages left unread (not opening) are looked at again
		}
	}
}

// page handles the unread messages after `after`, one page of them, and
// returns where to continue and how many it saw.
func (s *spoolIn) page(ctx context.Context, after uint64) (uint64, int, error) {
	page, err := s.store.InboxOf(queue.InboxQuery{Mailboxes: []string{s.mailbox}, After: after, Max: spoolInPage, MaxBytes: spoolInPageBytes})
	if err != nil {
		return after, 0, err
	}
	if len(page.Items) == 0 {
		return page.Next, 0, nil
	}
	inCur, err := s.inCur(page.Items)
	if err != nil {
		return after, 0, err
	}
	var ack []string
	cur := false // an ack of a message found in cur/
	for _, it := range page.Items {
		id := it.Message.ID
		if !safeName(id) {
			if s.skip(id) {
				s.log.Error("spool_in: message id is not a safe file name; not written, left unread", "id", id)
			}
			continue
		}
		if inCur[id] {
			ack, cur = append(ack, id), true
			continue
		}
		switch _, err := os.Lstat(filepath.Join(s.dir, "new", id)); {
		case err == nil:
			ack = append(ack, id)
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return after, 0, err
		}
		m := it.Message
		payload, err := s.open(&m)
		if err != nil {
			if s.skip(id) {
				s.log.Error("spool_in: payload does not open; not written, left unread", "id", id, "from", m.Origin, "err", err)
			}
			continue
		}
		if err := s.write(id, payload); err != nil {
			return after, 0, err
		}
		ack = append(ack, id)
	}
	if len(ack) > 0 {
		// The renames must be durable before the acks: also those found
		// in new/ or cur/ (a killed process's rename may still be in the
		// page cache only).
		if err := syncDir(filepath.Join(s.dir, "new")); err != nil {
			return after, 0, err
		}
		if cur {
			if err := syncDir(filepath.Join(s.dir, "cur")); err != nil {
				return after, 0, err
			}
		}
		by := spoolActor(queue.MailboxName(s.mailbox))
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		res, err := s.propose(actx, &queue.Command{Op: queue.OpMarkRead, Time: time.Now().UnixNano(),
			MarkRead: &queue.MarkRead{IDs: ack, By: &by, Node: s.node, Mailboxes: []string{s.mailbox}}})
		if err != nil {
			return after, 0, err
		}
		if res.MarkRead != nil {
			for i, e := range res.MarkRead.Errs {
				if e != "" && i < len(ack) {
					s.log.Info("spool_in: written, not acknowledged", "id", ack[i], "reason", e)
				}
			}
		}
		s.log.Debug("spool_in: written and acknowledged", "messages", len(ack))
	}
	return page.Next, len(page.Items), nil
}

// skip notes that id is left unread and reports whether that is news
// (to be logged).
func (s *spoolIn) skip(id string) bool {
	if s.skipped[id] || len(s.skipped) >= maxUndecryptable {
		return false
	}
	s.skipped[id] = true
	return true
}

// write writes payload to tmp/id, syncs it and renames it to new/id.
// A file already at tmp/id (left by a crash) is replaced, never followed.
func (s *spoolIn) write(id string, payload []byte) error {
	tmp := filepath.Join(s.dir, "tmp", id)
	err := writeNewFile(tmp, payload, 0o640, true) // the directory's group reads it
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, "new", id))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// writeNewFile writes data to a new file at path, with mode whatever the
// umask (the unit's is 0077), synced if sync. Whatever is at path is
// removed first and never followed (O_EXCL): a symbolic link planted
// there by a writer of the directory is replaced, not written through.
func writeNewFile(path string, data []byte, mode os.FileMode, sync bool) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// inCur reports which of items have a file in cur/ (ID, or ID:FLAGS as
// a Maildir reader names it), reading cur/ once.
func (s *spoolIn) inCur(items []queue.InboxItem) (map[string]bool, error) {
	want := make(map[string]bool, len(items))
	for _, it := range items {
		want[it.Message.ID] = true
	}
	d, err := os.Open(filepath.Join(s.dir, "cur"))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	found := map[string]bool{}
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			id, _, _ := strings.Cut(n, ":")
			if want[id] {
				found[id] = true
			}
		}
		if err != nil || len(names) == 0 {
			return found, nil
		}
	}
}

// cleanTmp removes what a crash left in tmp/ (the spool is its only
// writer).
func (s *spoolIn) cleanTmp() {
	d := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(d)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() {
			os.Remove(filepath.Join(d, e.Name()))
		}
	}
}

// safeName reports whether id can be a file name as it is: what the
// origin's ids are (UUIDs), not a path or a Maildir flag separator.
func safeName(id string) bool {
	if id == "" || id == "." || id == ".." || len(id) > 200 || strings.HasPrefix(id, ".") {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// makeSpoolDir creates dir, mode 0750 whatever the umask, if it does not
// exist; an existing directory keeps its owner and mode.
func makeSpoolDir(dir string) error {
	err := os.Mkdir(dir, 0o750)
	switch {
	case errors.Is(err, fs.ErrExist):
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	case errors.Is(err, fs.ErrNotExist): // its parent is missing
		if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
			return err
		}
		return makeSpoolDir(dir)
	case err != nil:
		return err
	}
	// Mode 0750 whatever the umask, keeping the set-group-ID bit a
	// directory inherits from a set-group-ID parent (its files then take
	// the parent's group).
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if want := fi.Mode()&os.ModeSetgid | 0o750; fi.Mode().Perm() != 0o750 {
		return os.Chmod(dir, want)
	}
	return nil
}

// syncDir fsyncs a directory, making the renames into it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
