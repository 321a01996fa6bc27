package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hotline-link/hotline/queue"
)

// spoolOut submits the files of one mailbox's outgoing spool directory
// (spool_out), one message per file, and removes each file once its
// message is committed.
//
// A file is taken when its name does not start with "." and does not end
// in ".error", no NAME.error lies beside it, and its size and mtime have
// not changed for settle (so that a plain cp works; writers may also
// write a dot-file and rename it). Its message goes from the mailbox to
// spool_to with spool_type and spool_precedence; its idempotency key is
// "spool:MAILBOX/NAME", so a crash between the commit and the removal
// submits it again as the same message (Existing) and then removes it: a
// file is never lost nor doubled, and a file name is used once per
// retention period (the same name with other content is refused as a key
// conflict). A file that cannot be submitted for good (unreadable, empty,
// larger than max_message_size, not a regular file, refused by the site)
// gets NAME.error beside it naming the problem and is left alone until
// that file is removed; a file that disappears meanwhile is skipped. A
// failure that may pass (no quorum, shutting down) is retried after a
// growing pause.
//
// Events come from inotify (fsnotify) and a periodic rescan (inotify's
// queue can overflow, and a file must be seen twice to have settled). At
// most spoolWorkers files are read and submitted at a time, each at most
// max_message_size.
type spoolOut struct {
	dir     string
	mailbox string // display name (the key's)
	item    queue.SubmitItem
	maxSize int64
	send    func(context.Context, queue.SubmitItem, queue.Actor) (queue.SubmitResult, error) // sender.send
	log     *slog.Logger

	settle time.Duration // unchanged this long before a file is taken
	rescan time.Duration // a full scan at least this often

	mu       sync.Mutex
	busy     map[string]bool // names being submitted (under mu)
	noError  map[string]bool // names whose .error could not be written (under mu)
	backoff  time.Duration   // pause after a failure that may pass (under mu)
	retryAt  time.Time       // no new file before this (under mu)
	finished chan struct{}   // a worker finished a file: scan again soon
}

// observation is what a scan saw of a file, and when it first saw that.
type observation struct {
	size  int64
	mtime time.Time
	since time.Time
}

const (
	spoolWorkers     = 4
	spoolQueued      = 64    // settled names waiting for a worker
	spoolMaxTracked  = 10000 // files watched for settling at once; more wait for a later scan
	spoolMaxBackoff  = 30 * time.Second
	spoolErrorSuffix = ".error"
)

func newSpoolOut(mb *mailbox, maxSize int64, send func(context.Context, queue.SubmitItem, queue.Actor) (queue.SubmitResult, error), log *slog.Logger) (*spoolOut, error) {
	c := mb.cfg
	site, box, err := parseAddress(c.SpoolTo)
	if err != nil {
		return nil, err
	}
	prec, err := queue.ParsePrecedence(c.SpoolPrecedence)
	if err != nil {
		return nil, err
	}
	typ := c.SpoolType
	if sameMediaType(typ, "application/octet-stream") {
		typ = ""
	}
	return &spoolOut{
		dir: c.SpoolOut, mailbox: queue.MailboxName(mb.name), maxSize: maxSize, send: send,
		item:   queue.SubmitItem{Dest: site, Mailbox: box, From: mb.name, Type: typ, Precedence: prec},
		log:    log.With("component", "spool_out", "mailbox", queue.MailboxName(mb.name), "dir", c.SpoolOut),
		settle: time.Second, rescan: 5 * time.Second,
		busy: map[string]bool{}, noError: map[string]bool{}, finished: make(chan struct{}, 1),
	}, nil
}

// key is the idempotency key of the file name.
func (s *spoolOut) key(name string) string { return "spool:" + s.mailbox + "/" + name }

// run watches the directory until ctx ends, then waits for its workers.
func (s *spoolOut) run(ctx context.Context) {
	if err := makeSpoolDir(s.dir); err != nil { // spool_in.go
		s.log.Error("spool_out: cannot create the directory; not spooling", "err", err)
		return
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		s.log.Warn("spool_out: no inotify; rescanning only", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(s.dir); err != nil {
			s.log.Warn("spool_out: cannot watch the directory; rescanning only", "err", err)
		}
		events, errs = w.Events, w.Errors
	}
	jobs := make(chan string, spoolQueued)
	var wg sync.WaitGroup
	for range spoolWorkers {
		wg.Go(func() {
			for name := range jobs {
				if ctx.Err() == nil { // stopping: leave the queued files to the next start
					s.take(ctx, name)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(jobs)
	s.log.Info("spool_out: watching", "to", s.item.Dest+"/"+queue.MailboxName(s.item.Mailbox))

	seen := map[string]observation{}
	t := time.NewTimer(0)
	defer t.Stop()
	next := time.Now()              // when t fires
	soon := func(d time.Duration) { // scan within d
		if time.Until(next) > d {
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(d)
			next = time.Now().Add(d)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.finished:
			soon(50 * time.Millisecond)
			continue
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if ev.Op != fsnotify.Chmod && !strings.HasPrefix(filepath.Base(ev.Name), ".") {
				soon(100 * time.Millisecond)
			}
			continue
		case err, ok := <-errs:
			if !ok {
				errs = nil
			} else if errors.Is(err, fsnotify.ErrEventOverflow) {
				soon(100 * time.Millisecond)
			} else {
				s.log.Warn("spool_out: inotify", "err", err)
			}
			continue
		case <-t.C:
		}
		d := s.rescan
		if s.scan(ctx, seen, jobs) {
			d = s.settle / 2
		}
		t.Reset(d)
		next = time.Now().Add(d)
	}
}

// scan lists the directory once: it records what it sees in seen, queues
// settled files for the workers (up to spoolQueued waiting) and reports
// whether files are waiting to settle or for a place in the queue.
func (s *spoolOut) scan(ctx context.Context, seen map[string]observation, jobs chan<- string) (waiting bool) {
	d, err := os.Open(s.dir)
	if err != nil {
		s.log.Warn("spool_out: cannot read the directory", "err", err)
		return false
	}
	defer d.Close()
	now := time.Now()
	s.mu.Lock()
	paused := now.Before(s.retryAt)
	s.mu.Unlock()
	present := map[string]bool{}  // the names looked at in this scan
	errFiles := map[string]bool{} // NAME of each NAME.error
	listed := map[string]bool{}   // every candidate name listed
	var names []string
	for {
		ents, err := d.ReadDir(1024)
		for _, e := range ents {
			n := e.Name()
			switch {
			case strings.HasPrefix(n, "."), e.IsDir():
			case strings.HasSuffix(n, spoolErrorSuffix):
				errFiles[strings.TrimSuffix(n, spoolErrorSuffix)] = true
			default:
				names = append(names, n)
				listed[n] = true
			}
		}
		if err != nil || len(ents) == 0 {
			break
		}
	}
	for _, n := range names {
		if errFiles[n] || len(present) >= spoolMaxTracked {
			continue
		}
		s.mu.Lock()
		skip := s.busy[n] || s.noError[n]
		s.mu.Unlock()
		if skip {
			continue
		}
		fi, err := os.Lstat(filepath.Join(s.dir, n))
		if err != nil || fi.IsDir() {
			continue // gone, or a subdirectory
		}
		present[n] = true
		o, ok := seen[n]
		if !ok || o.size != fi.Size() || !o.mtime.Equal(fi.ModTime()) {
			seen[n] = observation{size: fi.Size(), mtime: fi.ModTime(), since: now}
			waiting = true
			continue
		}
		if now.Sub(o.since) < s.settle || paused {
			waiting = true
			continue
		}
		s.mu.Lock()
		s.busy[n] = true
		s.mu.Unlock()
		select {
		case jobs <- n:
			delete(seen, n)
		case <-ctx.Done():
			return false
		default: // the queue is full: the next scan offers it again
			s.mu.Lock()
			delete(s.busy, n)
			s.mu.Unlock()
			waiting = true
		}
	}
	for n := range seen {
		if !present[n] {
			delete(seen, n)
		}
	}
	s.mu.Lock()
	for n := range s.noError {
		if !listed[n] {
			delete(s.noError, n) // the file went away: forget it
		}
	}
	s.mu.Unlock()
	return waiting
}

// take submits one settled file and removes it, or leaves NAME.error, or
// leaves it for a later try; then frees its name.
func (s *spoolOut) take(ctx context.Context, name string) {
	defer func() {
		s.mu.Lock()
		delete(s.busy, name)
		s.mu.Unlock()
		select {
		case s.finished <- struct{}{}:
		default:
		}
	}()
	path := filepath.Join(s.dir, name)
	payload, fi, problem, err := s.read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.log.Info("spool_out: file disappeared before it was submitted; skipped", "file", name)
		return
	case errors.Is(err, errUnsettled):
		return // changed while read: it settles again first
	case err != nil:
		s.refuse(name, problem+": "+err.Error())
		return
	case problem != "":
		s.refuse(name, problem)
		return
	}
	// Removed or replaced while read: skipped (a file renamed over it is
	// taken once it has settled).
	if now, err := os.Lstat(path); err != nil || !os.SameFile(now, fi) {
		s.log.Info("spool_out: file disappeared or was replaced while read; skipped", "file", name)
		return
	}
	item := s.item
	item.Key, item.Payload = s.key(name), payload
	res, err := s.send(ctx, item, spoolActor(s.mailbox))
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return // stopping: the next start takes it
	case errors.Is(err, queue.ErrResyncing), errors.As(err, new(*commitError)):
		s.pause(name, err)
		return
	default:
		s.refuse(name, sendErrorText(err))
		return
	}
	s.mu.Lock()
	s.backoff = 0
	s.mu.Unlock()
	// Remove it only if the name still refers to the file read: a file
	// renamed over it meanwhile is a new file (its submission, with the
	// same key and other content, is then refused as a key conflict).
	if now, err := os.Lstat(path); err == nil && os.SameFile(now, fi) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.refuse(name, fmt.Sprintf("it was sent (message %s) but cannot be removed (%v); remove it yourself", res.ID, err))
			return
		}
	}
	s.log.Info("spool_out: submitted", "file", name, "id", res.ID, "existing", res.Existing)
}

var errUnsettled = errors.New("changed while being read")

// read reads the file at path, whole, if it is a regular file of 1 to
// maxSize bytes that did not change while read. problem names what is
// wrong with it (with err, or alone).
func (s *spoolOut) read(path string) (payload []byte, fi os.FileInfo, problem string, err error) {
	// O_NOFOLLOW: a symbolic link is refused, not followed; O_NONBLOCK: a
	// FIFO does not block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, "it is a symbolic link; the spool takes regular files only", nil
	}
	if err != nil {
		return nil, nil, "cannot open it", err
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return nil, nil, "cannot stat it", err
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fi, fmt.Sprintf("it is not a regular file but %s; the spool takes regular files only", fileKind(fi.Mode())), nil
	case fi.Size() > s.maxSize:
		return nil, fi, fmt.Sprintf("it is %d bytes, larger than max_message_size (%d)", fi.Size(), s.maxSize), nil
	}
	payload, err = io.ReadAll(io.LimitReader(f, s.maxSize+1))
	if err != nil {
		return nil, fi, "cannot read it", err
	}
	after, err := f.Stat()
	if err != nil {
		return nil, fi, "cannot stat it", err
	}
	switch {
	case after.Size() != fi.Size() || !after.ModTime().Equal(fi.ModTime()) || int64(len(payload)) != fi.Size():
		return nil, fi, "", errUnsettled
	case len(payload) == 0:
		return nil, fi, "it is empty; a message has 1 byte at least", nil
	}
	return payload, fi, "", nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeDir != 0:
		return "a directory"
	}
	return m.Type().String()
}

// refuse writes NAME.error (through a dot-file and a rename, so that it
// appears whole) naming the problem; the file stays and is not tried
// again until NAME.error is removed.
func (s *spoolOut) refuse(name, problem string) {
	s.log.Warn("spool_out: file not submitted; see its .error file", "file", name, "problem", problem)
	text := fmt.Sprintf("hotline spool_out: %q was not sent: %s.\nRemove this file to try again.\n", name, problem)
	tmp := filepath.Join(s.dir, "."+name+spoolErrorSuffix+".tmp")
	err := writeNewFile(tmp, []byte(text), 0o644, false) // spool_in.go; the file's writer reads it
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name+spoolErrorSuffix))
	}
	if err != nil {
		os.Remove(tmp)
		s.log.Error("spool_out: cannot write the .error file; the file is not tried again until hotlined restarts or it is renamed", "file", name, "err", err)
		s.mu.Lock()
		if len(s.noError) < spoolMaxTracked {
			s.noError[name] = true
		}
		s.mu.Unlock()
	}
}

// pause notes a failure that may pass: no file is taken for a while
// (1s, doubling up to spoolMaxBackoff).
func (s *spoolOut) pause(name string, err error) {
	s.mu.Lock()
	s.backoff = min(max(2*s.backoff, time.Second), spoolMaxBackoff)
	s.retryAt = time.Now().Add(s.backoff)
	b := s.backoff
	s.mu.Unlock()
	s.log.Warn("spool_out: not submitted yet; retrying", "file", name, "in", b, "err", sendErrorText(err))
}
