package mailboxtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
)

// spoolWait bounds each wait of the spool tests: generous, because a
// loaded machine slows elections and commits (a wait ends as soon as its
// condition holds).
const spoolWait = 3 * time.Minute

// spoolDirs are a test's spool directories: alpha-1's outgoing ones
// (out: text/plain; stix: STIX bundles and held: from a mailbox with
// two-person release, "" none) and bravo-2's incoming Maildir.
type spoolDirs struct{ out, stix, held, in string }

func newSpoolDirs(t *testing.T) spoolDirs {
	d := t.TempDir()
	return spoolDirs{out: filepath.Join(d, "alpha-out"), stix: filepath.Join(d, "alpha-stix"),
		held: filepath.Join(d, "alpha-held"), in: filepath.Join(d, "bravo-in")}
}

// spoolConfig gives every node a mailbox "cert"; alpha-1 spools dirs.out
// to bravo/cert, bravo-2 writes bravo's cert messages into dirs.in.
func spoolConfig(dirs spoolDirs, maxSize int64) clustertest.Option {
	return func(c *daemon.Config) {
		mb := daemon.MailboxConfig{Name: "cert", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"}}
		switch c.Node {
		case "alpha-1":
			mb.SpoolOut, mb.SpoolTo, mb.SpoolType, mb.SpoolPrecedence = dirs.out, "bravo/cert", "text/plain", "priority"
		case "bravo-2":
			mb.SpoolIn = dirs.in
		}
		c.Mailboxes = []daemon.MailboxConfig{mb}
		if c.Node == "alpha-1" && dirs.stix != "" {
			c.Mailboxes = append(c.Mailboxes, daemon.MailboxConfig{Name: "intel", SpoolOut: dirs.stix, SpoolTo: "bravo/cert", SpoolType: stixType})
		}
		if c.Site == "alpha" && dirs.held != "" {
			held := daemon.MailboxConfig{Name: "held", Release: true, Releasers: []string{"uid:0"}}
			if c.Node == "alpha-1" {
				held.SpoolOut, held.SpoolTo = dirs.held, "bravo/cert"
			}
			c.Mailboxes = append(c.Mailboxes, held)
		}
		if maxSize > 0 {
			c.MaxMessageSize = maxSize
		}
	}
}

// maildir reads every file of dir's new/ and cur/ by message id.
func maildir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out, err := readMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readMaildir(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				if os.IsNotExist(err) {
					continue // moved to cur/ meanwhile
				}
				return nil, err
			}
			id, _, _ := strings.Cut(e.Name(), ":")
			out[id] = b
		}
	}
	return out, nil
}

// TestMailboxSpoolErrors runs an in-process lab: a file in alpha-1's
// spool_out arrives whole in bravo-2's spool_in and is acknowledged there
// (read at the origin); files that cannot be sent get NAME.error naming
// the problem and stay; dot-files, subdirectories and .error files are
// left alone; removing a .error file retries its file; a name used again
// with other content is a key conflict.
func TestMailboxSpoolErrors(t *testing.T) {
	// The appliance's unit runs with UMask=0077: the modes the spool
	// promises must not depend on it.
	umask := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(umask) })
	dirs := newSpoolDirs(t)
	const maxSize = 4096
	if err := os.MkdirAll(filepath.Join(dirs.out, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dirs.out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Before the lab starts, so that the first scan meets them.
	write("empty", nil)
	write("big", bytes.Repeat([]byte("x"), maxSize+1))
	write(".partial", []byte("a writer's temporary file"))
	write("sub/inner", []byte("in a subdirectory"))
	write("old.error", []byte("someone's"))
	if err := syscall.Mkfifo(filepath.Join(dirs.out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dirs.out, "link")); err != nil {
		t.Fatal(err)
	}
	write("bad\x01name", []byte("a control character in the name"))
	write("report-1.txt", []byte("indicators of the day\n"))
	// A bundle whose object lacks spec_version: refused by the submit's
	// STIX check, named in its .error file.
	if err := os.MkdirAll(dirs.stix, 0o750); err != nil {
		t.Fatal(err)
	}
	badBundle := `{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[{"type":"indicator",` +
		`"id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z",` +
		`"pattern":"[ file:name = 'x' ]","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dirs.stix, "bundle.json"), []byte(badBundle), 0o644); err != nil {
		t.Fatal(err)
	}

	lab := clustertest.Start(t, spoolConfig(dirs, maxSize))
	ctx, cancel := context.WithTimeout(context.Background(), 3*spoolWait)
	defer cancel()

	wantErr := map[string]string{
		"empty":       "it is empty",
		"big":         fmt.Sprintf("it is %d bytes, larger than max_message_size (%d)", maxSize+1, maxSize),
		"fifo":        "not a regular file but a FIFO",
		"link":        "symbolic link",
		"bad\x01name": "control character",
	}
	for name, want := range wantErr {
		clustertest.Eventually(t, spoolWait, name+".error", func() bool {
			_, err := os.Stat(filepath.Join(dirs.out, name+".error"))
			return err == nil
		})
		b, err := os.ReadFile(filepath.Join(dirs.out, name+".error"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s.error says %q; want it to name %q", name, b, want)
		}
		if _, err := os.Lstat(filepath.Join(dirs.out, name)); err != nil {
			t.Errorf("%s was not left in place: %v", name, err)
		}
	}

	clustertest.Eventually(t, spoolWait, "bundle.json.error", func() bool {
		_, err := os.Stat(filepath.Join(dirs.stix, "bundle.json.error"))
		return err == nil
	})
	if b, _ := os.ReadFile(filepath.Join(dirs.stix, "bundle.json.error")); !strings.Contains(string(b), `not a valid STIX 2.1 bundle: objects[0] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): "spec_version"`) {
		t.Errorf("bundle.json.error says %q; want it to name the object and spec_version", b)
	}

	// From a mailbox with two-person release: committed held, submitted by
	// the spool (removed from the directory), sent once released.
	if err := os.WriteFile(filepath.Join(dirs.held, "flash.txt"), []byte("held until released\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var held []client.HeldMessage
	clustertest.Eventually(t, spoolWait, "flash.txt held", func() bool {
		h, err := lab.Client("alpha-1").Held(ctx, "held")
		if err != nil {
			return false
		}
		held = h.Messages
		return len(held) == 1
	})
	clustertest.Eventually(t, spoolWait, "flash.txt removed once held", func() bool {
		_, err := os.Stat(filepath.Join(dirs.held, "flash.txt"))
		return os.IsNotExist(err)
	})
	if !strings.Contains(held[0].SubmittedBy, "spool:held") || held[0].Key != "spool:held/flash.txt" {
		t.Errorf("held message: submitted by %q, key %q; want spool:held, spool:held/flash.txt", held[0].SubmittedBy, held[0].Key)
	}
	if _, err := lab.Client("alpha-1").Release(ctx, held[0].ID); err != nil {
		t.Fatalf("release %s: %v", held[0].ID, err)
	}
	clustertest.Eventually(t, spoolWait, "the released flash.txt in bravo's new/", func() bool {
		for _, b := range maildir(t, dirs.in) {
			if string(b) == "held until released\n" {
				return true
			}
		}
		return false
	})

	var id string
	clustertest.Eventually(t, spoolWait, "report-1.txt in bravo's new/", func() bool {
		for i, b := range maildir(t, dirs.in) {
			if string(b) == "indicators of the day\n" {
				id = i
				return true
			}
		}
		return false
	})
	clustertest.Eventually(t, spoolWait, "report-1.txt removed from spool_out", func() bool {
		_, err := os.Stat(filepath.Join(dirs.out, "report-1.txt"))
		return os.IsNotExist(err)
	})
	clustertest.Eventually(t, spoolWait, "the message read at alpha", func() bool {
		m, err := lab.Client("alpha-2").Get(ctx, id)
		return err == nil && m.State == "read"
	})
	m, err := lab.Client("alpha-2").Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != "spool:cert/report-1.txt" || m.Mailbox != "cert" || m.FromMailbox != "cert" || m.Type != "text/plain" || m.Precedence != "priority" {
		t.Errorf("spooled message: key %q, mailbox %q, from %q, type %q, precedence %q; want spool:cert/report-1.txt, cert, cert, text/plain, priority",
			m.Key, m.Mailbox, m.FromMailbox, m.Type, m.Precedence)
	}
	// bravo's audit log names the spool as who acknowledged (asked until
	// the node asked has applied the ack).
	var by []string
	clustertest.Eventually(t, spoolWait, "bravo's audit read record of "+id, func() bool {
		audit, err := lab.Client("bravo-1").AuditEntriesOf(ctx, id)
		if err != nil {
			return false
		}
		by = by[:0] // the API shows the actor of operator records only: decode the record
		for _, e := range audit.Entries {
			if rec, err := queue.DecodeAuditRecord(e.Record); err == nil && rec.Kind == queue.AuditRead {
				by = append(by, fmt.Sprintf("%s on %s", rec.Actor.User, rec.Node))
			}
		}
		return len(by) > 0
	})
	if len(by) != 1 || by[0] != "spool:cert on bravo-2" {
		t.Errorf("bravo's audit read records of %s name %q; want one, by spool:cert on bravo-2", id, by)
	}

	// The same name again with other content: a key conflict.
	write("report-1.txt", []byte("other indicators\n"))
	clustertest.Eventually(t, spoolWait, "report-1.txt.error", func() bool {
		b, err := os.ReadFile(filepath.Join(dirs.out, "report-1.txt.error"))
		return err == nil && strings.Contains(string(b), "already used for a different message")
	})
	// A .error removed: its file is tried again (now with content).
	write("empty", []byte("late content\n"))
	if err := os.Remove(filepath.Join(dirs.out, "empty.error")); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, spoolWait, "empty sent once its .error was removed", func() bool {
		_, err := os.Stat(filepath.Join(dirs.out, "empty"))
		return os.IsNotExist(err)
	})
	clustertest.Eventually(t, spoolWait, "late content in bravo's new/", func() bool {
		for _, b := range maildir(t, dirs.in) {
			if string(b) == "late content\n" {
				return true
			}
		}
		return false
	})
	// The crash between the commit and the removal: the file's message is
	// stored already (here by the API, with the spool's key and
	// attributes); the file is removed and not sent again.
	before := len(maildir(t, dirs.in))
	m, err = lab.Client("alpha-2").Submit(ctx, client.SubmitRequest{To: "bravo/cert", From: "cert", Type: "text/plain", Precedence: "priority",
		Key: "spool:cert/committed.txt", Payload: []byte("committed before the crash\n"), Wait: "read", Timeout: spoolWait})
	if err != nil || m.State != "read" {
		t.Fatalf("submit as the spool would: %+v, %v", m, err)
	}
	write("committed.txt", []byte("committed before the crash\n"))
	clustertest.Eventually(t, spoolWait, "committed.txt removed", func() bool {
		_, err := os.Stat(filepath.Join(dirs.out, "committed.txt"))
		return os.IsNotExist(err)
	})
	if got := len(maildir(t, dirs.in)); got != before+1 {
		t.Errorf("bravo's Maildir holds %d messages after a resubmitted file; want %d", got, before+1)
	}

	// The crash between the rename and the ack: a message whose file a
	// reader moved to cur/ already is acknowledged, not written again.
	if err := lab.StopNode("bravo-2"); err != nil {
		t.Fatal(err)
	}
	m, err = lab.Client("alpha-2").Submit(ctx, client.SubmitRequest{To: "bravo/cert", From: "cert", Payload: []byte("written before the crash\n"), Wait: "delivered", Timeout: spoolWait})
	if err != nil || m.State != "delivered" {
		t.Fatalf("submit while bravo-2 is down: %+v, %v", m, err)
	}
	if err := os.WriteFile(filepath.Join(dirs.in, "cur", m.ID+":2,S"), []byte("written before the crash\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	lab.StartNode("bravo-2")
	clustertest.Eventually(t, spoolWait, "the message in cur/ acknowledged", func() bool {
		got, err := lab.Client("alpha-2").Get(ctx, m.ID)
		return err == nil && got.State == "read"
	})
	if _, err := os.Stat(filepath.Join(dirs.in, "new", m.ID)); err == nil {
		t.Errorf("%s was written again to new/ although cur/ holds it", m.ID)
	}

	for _, name := range []string{".partial", "sub/inner", "old.error"} {
		if _, err := os.Stat(filepath.Join(dirs.out, name)); err != nil {
			t.Errorf("%s should be left alone: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dirs.out, ".partial.error")); err == nil {
		t.Error("a dot-file got a .error file")
	}
	if got := len(maildir(t, dirs.in)); got != 5 {
		t.Errorf("bravo's Maildir holds %d messages; want 5", got)
	}
	modes := map[string]os.FileMode{dirs.in: 0o750 | os.ModeDir, filepath.Join(dirs.out, "big.error"): 0o644}
	for _, d := range []string{"tmp", "new", "cur"} {
		modes[filepath.Join(dirs.in, d)] = 0o750 | os.ModeDir
	}
	news, _ := os.ReadDir(filepath.Join(dirs.in, "new"))
	for _, e := range news {
		modes[filepath.Join(dirs.in, "new", e.Name())] = 0o640
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
		} else if fi.Mode() != want {
			t.Errorf("%s: mode %v; want %v", p, fi.Mode(), want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dirs.in, "tmp")); len(ents) != 0 {
		t.Errorf("bravo's tmp/ holds %d files after the writes", len(ents))
	}
}

// spoolProcs runs some nodes of a lab as hotlined processes (so that
// kill -9 is real), each with its config in Dir/<node>.toml and its output
// in Dir/<node>.log; the others run in the test process.
type spoolProcs struct {
	t     *testing.T
	bin   string
	dir   string
	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

func (p *spoolProcs) start(node string) {
	p.t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(p.bin, "hotlined"), "--config", filepath.Join(p.dir, node+".toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.procs[node] = cmd
	p.mu.Unlock()
}

func (p *spoolProcs) kill9(node string) {
	p.mu.Lock()
	cmd := p.procs[node]
	delete(p.procs, node)
	p.mu.Unlock()
	cmd.Process.Kill()
	cmd.Wait()
}

// stop stops every process with SIGTERM (kill after 10s); with the test
// failed, it logs the tail of each one's output.
func (p *spoolProcs) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for node, cmd := range p.procs {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.t.Errorf("%s did not stop within 10s of SIGTERM", node)
			cmd.Process.Kill()
			<-done
		}
		if p.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(p.dir, node+".log"))
			t := b[max(0, len(b)-4000):]
			p.t.Logf("--- %s log (tail) ---\n%s", node, t)
		}
	}
}

// writeConfig writes c as TOML to Dir/<node>.toml.
func (p *spoolProcs) writeConfig(c *daemon.Config) {
	p.t.Helper()
	f, err := os.Create(filepath.Join(p.dir, c.Node+".toml"))
	if err != nil {
		p.t.Fatal(err)
	}
	err = toml.NewEncoder(f).Encode(c)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.t.Fatal(err)
	}
}

// spoolContent is file i's content: its name on the first line, then
// filler of a size that varies with i.
func spoolContent(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "file-%03d\n", i)
	for b.Len() < 64+(i*97)%3000 {
		fmt.Fprintf(&b, "%d indicator %d of file %d\n", b.Len(), i*31, i)
	}
	return b.Bytes()
}

// TestMailboxSpoolKill9 spools a few hundred files from alpha-1's
// spool_out to bravo-2's spool_in while alpha-1 is killed with SIGKILL and
// restarted, and bravo-2 likewise: alpha-1 and bravo-2 run as hotlined
// processes, the other four nodes in the test process. Every file must
// arrive exactly once, whole (a checker reads everything in new/ and cur/
// all along), spool_out must empty, and a FIFO and a file over
// max_message_size get their .error files.
func TestMailboxSpoolKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts hotlined processes")
	}
	const files, maxSize = 300, 64 << 10
	procNodes := map[string]bool{"alpha-1": true, "bravo-2": true}
	dir := t.TempDir()
	dirs := spoolDirs{out: filepath.Join(dir, "alpha-out"), in: filepath.Join(dir, "bravo-in")}
	if err := daemon.EnsureLabPKIFor(dir, daemon.LabSites); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigsFor(dir, daemon.LabSites, []string{"fiber", "sat"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 41+s, 1+i)
		return clustertest.FreeAddr(t, ip), map[string]string{
			"fiber": clustertest.FreeAddr(t, ip),
			"sat":   clustertest.FreeAddr(t, fmt.Sprintf("127.0.%d.%d", 51+s, 1+i)),
		}
	})
	procs := &spoolProcs{t: t, bin: clustertest.Binaries(t), dir: dir, procs: map[string]*exec.Cmd{}}
	lab := clustertest.New(t, dir, daemon.LabSites)
	t.Cleanup(procs.stop)
	for _, c := range cfgs {
		clustertest.ShortTimeouts(c)
		c.LogLevel = "warn"
		lab.Add(c, spoolConfig(dirs, maxSize))
		if procNodes[c.Node] {
			c.LogLevel = "info" // the spools' lines, for the summary below
			procs.writeConfig(c)
			procs.start(c.Node)
		} else {
			lab.StartNode(c.Node)
		}
	}
	for _, s := range daemon.LabSites {
		// Lab.Settled knows only the nodes in this process: ask every
		// node's socket until all name the same leader, which leads.
		clustertest.Eventually(t, spoolWait, "site "+s+" settled", func() bool {
			leaders, leading := map[string]bool{}, ""
			for _, n := range daemon.LabNodes(s) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				st, err := lab.Client(n).Status(ctx)
				cancel()
				if err != nil || st.Leader == "" {
					return false
				}
				leaders[st.Leader] = true
				if st.Role == "leader" {
					leading = n
				}
			}
			return len(leaders) == 1 && leaders[leading]
		})
	}

	want := map[string][]byte{} // first line -> content
	for i := range files {
		want[fmt.Sprintf("file-%03d", i)] = spoolContent(i)
	}
	// The checker: everything ever visible in new/ or cur/ is one whole
	// file; no file has two message ids.
	stop := make(chan struct{})
	checked := make(chan struct{})
	var bad []string
	go func() {
		defer close(checked)
		for {
			select {
			case <-stop:
				return
			default:
			}
			files, err := readMaildir(dirs.in)
			if err != nil {
				bad = append(bad, err.Error())
				return
			}
			for id, b := range files {
				first, _, _ := bytes.Cut(b, []byte("\n"))
				if w, ok := want[string(first)]; !ok || !bytes.Equal(w, b) {
					bad = append(bad, fmt.Sprintf("%s: %d bytes beginning %q", id, len(b), b[:min(len(b), 20)]))
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	if err := os.MkdirAll(dirs.out, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dirs.out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs.out, "huge"), bytes.Repeat([]byte("y"), maxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	// The writer: plain writes into spool_out (as cp does), one file every
	// few milliseconds, so that the kills fall while files are spooled.
	wrote := make(chan error, 1)
	go func() {
		for i := range files {
			f, err := os.Create(filepath.Join(dirs.out, fmt.Sprintf("report-%03d.txt", i)))
			if err != nil {
				wrote <- err
				return
			}
			b := spoolContent(i)
			f.Write(b[:len(b)/2])
			time.Sleep(time.Millisecond)
			f.Write(b[len(b)/2:])
			f.Close()
			time.Sleep(10 * time.Millisecond)
		}
		wrote <- nil
	}()
	count := func(dir string) int {
		ents, _ := os.ReadDir(dir)
		return len(ents)
	}
	arrived := func() int { return len(maildir(t, dirs.in)) }
	clustertest.Eventually(t, spoolWait, "80 files arrived", func() bool { return arrived() >= 80 })
	t.Logf("kill -9 alpha-1 with %d files in spool_out, %d arrived", count(dirs.out), arrived())
	procs.kill9("alpha-1")
	time.Sleep(time.Second)
	procs.start("alpha-1")
	clustertest.Eventually(t, spoolWait, "160 files arrived", func() bool { return arrived() >= 160 })
	t.Logf("kill -9 bravo-2 with %d files in spool_out, %d arrived", count(dirs.out), arrived())
	procs.kill9("bravo-2")
	time.Sleep(time.Second)
	procs.start("bravo-2")
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, spoolWait, "every file arrived", func() bool { return arrived() >= files })
	clustertest.Eventually(t, spoolWait, "spool_out emptied but for the refused files", func() bool {
		ents, _ := os.ReadDir(dirs.out)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ") == "fifo fifo.error huge huge.error"
	})
	ctx, cancel := context.WithTimeout(context.Background(), spoolWait)
	defer cancel()
	clustertest.Eventually(t, spoolWait, "bravo's cert mailbox read", func() bool {
		st, err := lab.Client("bravo-1").Status(ctx)
		if err != nil {
			return false
		}
		for _, m := range st.Mailboxes {
			if m.Name == "cert" {
				return m.Unread == 0
			}
		}
		return false
	})
	close(stop)
	<-checked
	if len(bad) > 0 {
		t.Fatalf("a partial or unknown file was visible in bravo's Maildir: %s", bad[0])
	}
	got := map[string]int{}
	for _, b := range maildir(t, dirs.in) {
		first, _, _ := bytes.Cut(b, []byte("\n"))
		got[string(first)]++
	}
	for name := range want {
		if got[name] != 1 {
			t.Errorf("%s arrived %d times", name, got[name])
		}
	}
	if len(got) != files {
		t.Errorf("%d distinct files arrived; want %d", len(got), files)
	}
	for _, f := range []string{"fifo.error", "huge.error"} {
		b, _ := os.ReadFile(filepath.Join(dirs.out, f))
		t.Logf("%s: %s", f, strings.TrimSpace(string(b)))
	}
	alog, _ := os.ReadFile(filepath.Join(dir, "alpha-1.log"))
	t.Logf("alpha-1 logged %d files submitted, %d of them found committed already (resubmitted after the kill)",
		bytes.Count(alog, []byte("spool_out: submitted")), bytes.Count(alog, []byte("existing=true")))
}

// TestMailboxSpoolConfig: each bad spool key is refused naming the key.
func TestMailboxSpoolConfig(t *testing.T) {
	dir := t.TempDir()
	if err := daemon.EnsureLabPKIFor(dir, daemon.LabSites); err != nil {
		t.Fatal(err)
	}
	out, in := filepath.Join(dir, "out"), filepath.Join(dir, "in")
	cert := func(f func(*daemon.MailboxConfig)) daemon.MailboxConfig {
		mb := daemon.MailboxConfig{Name: "cert", SpoolOut: out, SpoolTo: "bravo/cert"}
		f(&mb)
		return mb
	}
	for _, tc := range []struct {
		name  string
		boxes []daemon.MailboxConfig
		want  string // "" valid
	}{
		{"valid", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolIn = in })}, ""},
		{"no destination", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolTo = "" })}, "mailboxes[0].spool_to"},
		{"own site", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolTo = "alpha/cert" })}, "mailboxes[0].spool_to"},
		{"empty mailbox", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolTo = "bravo/" })}, "mailboxes[0].spool_to"},
		{"bad type", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolType = "not a type" })}, "mailboxes[0].spool_type"},
		{"bad precedence", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolPrecedence = "urgent" })}, "mailboxes[0].spool_precedence"},
		{"in is out", []daemon.MailboxConfig{cert(func(m *daemon.MailboxConfig) { m.SpoolIn = out + "/" })}, "mailboxes[0].spool_in"},
		{"shared", []daemon.MailboxConfig{cert(func(*daemon.MailboxConfig) {}),
			{Name: "watch", SpoolOut: out, SpoolTo: "bravo/watch"}}, "mailboxes[1].spool_out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := daemon.LabConfigsFor(dir, daemon.LabSites, []string{"fiber"}, func(s, i int) (string, map[string]string) {
				return clustertest.FreeAddr(t, "127.0.0.1"), map[string]string{"fiber": clustertest.FreeAddr(t, "127.0.0.1")}
			})[0] // validated only, never started
			c.Mailboxes = tc.boxes
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want one naming %s", err, tc.want)
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
}
