package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

func newBackupCmd(e *env) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "backup FILE [--quiet]",
		Short: "Take a consistent, checksummed backup of the node's state into FILE (admin)",
		Long: `backup asks the node serving the socket for a backup of its queue state:
one consistent read of the state, including everything the site had
committed when the request arrived, with a header (format, site, node,
Raft applied index, time, length) and a SHA-256 trailer. It is written to
FILE.tmp (mode 0600), synced, verified and renamed to FILE; progress goes
to stderr (bytes written of the total) unless --quiet.

A backup protects what it contains: messages submitted after it are not in
it. Restore a whole site from it with "hotlined restore" on every node
(README: Operations → Backup and restore).

Needs root or the daemon's admin group.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return usagef("backup takes one argument, the FILE to write")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return e.backup(c.Context(), args[0], quiet)
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	return cmd
}

func (e *env) backup(ctx context.Context, file string, quiet bool) (err error) {
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("backup: %s exists (an interrupted backup?): remove it first", tmp)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var prog *progress
	if !quiet {
		prog = &progress{w: e.stderr, tty: isTerminal(e.stderr), start: time.Now()}
	}
	info, err := e.client().Backup(ctx, f, prog.update)
	prog.done(err)
	if err != nil {
		return client.AdminError("backup", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	h, err := verifyBackup(tmp)
	if err != nil {
		return fmt.Errorf("backup: the file received does not verify: %w", err)
	}
	if err = os.Rename(tmp, file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, derr := os.Open(filepath.Dir(file)); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	fmt.Fprintf(e.stdout, "backup of site %s from %s at applied index %d: %s (%d bytes, sha256 %s verified)\n",
		h.Site, h.Node, info.Applied, file, info.Size, h.Sum)
	return nil
}

// verifyBackup reads the backup file at path through and checks it.
func verifyBackup(path string) (queue.BackupHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return queue.BackupHeader{}, err
	}
	defer f.Close()
	return queue.ReadBackup(f, io.Discard)
}

// progress prints "written / total" to stderr: in place on a terminal,
// otherwise a line every 2 seconds and a last one.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	n, t  int64
}

func (p *progress) update(written, total int64) {
	if p == nil {
		return
	}
	p.n, p.t = written, total
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.print("")
}

func (p *progress) print(end string) {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.n) / el
	}
	pct := ""
	if p.t > 0 {
		pct = fmt.Sprintf(" (%d%%)", p.n*100/p.t)
	}
	line := fmt.Sprintf("%d / %d bytes%s, %s/s, %.1fs", p.n, p.t, pct, humanBytes(rate), el)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K%s", line, end)
	} else {
		fmt.Fprintln(p.w, line+end)
	}
}

func (p *progress) done(err error) {
	if p == nil {
		return
	}
	switch {
	case err != nil && p.tty:
		fmt.Fprintln(p.w)
	case err == nil:
		p.print("")
		if p.tty {
			fmt.Fprintln(p.w)
		}
	}
}

func humanBytes(b float64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%.0f B", b)
	}
	div, exp := float64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", b/div, "KMGTPE"[exp])
}
