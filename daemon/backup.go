package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// Backup and restore (README: Operations → Backup and restore).
//
// A backup is this node's queue state as of one bbolt read transaction,
// after a read barrier (so it holds everything the site had committed when
// the request arrived), framed by queue.Backup with a header and a
// SHA-256 trailer. A restore gives every node of the site the same state
// with applied index 0, and the nodes bootstrap a new Raft cluster on it.
// The restored state is fenced (queue.RestoreBackup): the forwarders and
// receipt senders (package forward, resync.go) first ask each other site
// where it is, and only then give out sequence numbers again. Other sites
// notice that the restored site acknowledges less than before and resend
// from its last (forward.Window: restored).

// backup serves GET /v1/admin/backup: the backup file, streamed, with its
// length in Content-Length (the client shows progress against it).
func (a *apiServer) backup(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w, r) {
		return
	}
	start := time.Now()
	b, err := a.store.Backup(a.cfg.Node, start)
	if err != nil {
		writeError(w, http.StatusInternalServerError, client.CodeInternal, err.Error())
		return
	}
	defer b.Release()
	// A client that stops reading holds a read transaction: bound it.
	_ = http.NewResponseController(w).SetWriteDeadline(start.Add(backupWriteTime(b.Size())))
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(b.Size(), 10))
	h.Set(client.HeaderBackupApplied, strconv.FormatUint(b.Header.Applied, 10))
	w.WriteHeader(http.StatusOK)
	written, err := b.WriteTo(w)
	if err != nil {
		// The client sees a short body and refuses it.
		a.log.Warn("backup failed", "err", err, "written", written, "by", credString(caller(r)))
		return
	}
	a.log.Info("backup taken", "bytes", written, "applied", b.Header.Applied,
		"took", time.Since(start).Round(time.Millisecond), "by", credString(caller(r)))
}

// backupWriteTime is how long a backup of size bytes may take to send: a
// minute plus a second per MiB.
func backupWriteTime(size int64) time.Duration {
	return time.Minute + time.Duration(size>>20)*time.Second
}

// resyncAlarms names the other sites a restored state has not heard from.
func (h *health) resyncAlarms() []string {
	f := h.store.Fenced()
	if f == nil {
		return nil
	}
	sites := map[string]bool{}
	for _, c := range f.Out {
		sites[c.Dest] = true
	}
	for _, s := range f.Receipts {
		sites[s] = true
	}
	var out []string
	for _, s := range h.cfg.remoteSites() {
		if sites[s] {
			out = append(out, fmt.Sprintf("restored from a backup: not yet resynchronised with site %s; submits to it are refused (503, retry) until it answers", s))
		}
	}
	return out
}

// RestoreNode prepares cfg's node to start from a backup: it verifies the
// backup file and writes DATA_DIR/state.db from it (see
// queue.RestoreBackup). The node must have no state: data_dir must hold
// neither state.db nor Raft state. Every node of the site is restored
// from the same backup, then all are started; they bootstrap a new Raft
// cluster.
func RestoreNode(cfg *Config, from string) (queue.BackupHeader, error) {
	var h queue.BackupHeader
	raftDir := filepath.Join(cfg.DataDir, "raft")
	if ents, err := os.ReadDir(raftDir); err == nil && len(ents) > 0 {
		return h, fmt.Errorf("restore: %s holds Raft state: move data_dir %s aside on every node of site %s before restoring", raftDir, cfg.DataDir, cfg.Site)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return h, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return h, fmt.Errorf("restore: %w", err)
	}
	h, err := queue.RestoreBackup(from, filepath.Join(cfg.DataDir, "state.db"), cfg.Site, cfg.remoteSites())
	if err != nil {
		return h, err
	}
	return h, nil
}

// restoreCommand is `hotlined restore --config FILE --from BACKUP`.
func restoreCommand(stdout io.Writer) *cobra.Command {
	var configFile, from string
	cmd := &cobra.Command{
		Use:   "restore --config FILE --from BACKUP",
		Short: "Prepare this node's data_dir from a backup (the node must be stopped, its data_dir moved aside)",
		Long: `restore verifies BACKUP (taken with "hotlinectl backup") and writes the
node's state from it, ready to start. Restore every node of the site from
the same backup, then start them all: they form a new Raft cluster. Until
the restored site has heard from each other site, submits to that site are
refused with 503 (retry). See README: Operations → Backup and restore.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" || from == "" {
				return usageError{errors.New("restore needs --config FILE and --from BACKUP")}
			}
			cfg, err := LoadConfig(configFile)
			if err != nil {
				return err
			}
			h, err := RestoreNode(cfg, from)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "restored %s/%s from %s: backup of site %s taken on %s at %s (applied index %d, %d bytes of state, sha256 %s)\n",
				cfg.Site, cfg.Node, from, h.Site, h.Node, h.Time.Format(time.RFC3339), h.Applied, h.Length, h.Sum)
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the node's config file (TOML)")
	cmd.Flags().StringVar(&from, "from", "", "the backup file")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return cmd
}
