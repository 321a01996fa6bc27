package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// PathAdminBackup streams a backup of the node's state (admin only).
const PathAdminBackup = "/v1/admin/backup" // GET: the backup file (application/octet-stream, Content-Length)

// HeaderBackupApplied is the reply header of PathAdminBackup giving the
// Raft index the backed-up state had applied.
const HeaderBackupApplied = "Hotline-Backup-Applied"

// BackupInfo describes a backup received by [Client.Backup].
type BackupInfo struct {
	Size    int64  // bytes written to w
	Applied uint64 // the Raft index the state had applied
}

// Backup streams a backup of the node's state to w (admin only). progress,
// if not nil, is called as bytes arrive with the bytes written so far and
// the total. A reply cut short is an error; the caller should still
// verify the file it wrote (the format ends with a checksum).
func (c *Client) Backup(ctx context.Context, w io.Writer, progress func(written, total int64)) (*BackupInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+PathAdminBackup, nil)
	if err != nil {
		return nil, fmt.Errorf("client: backup: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, http.MethodGet, PathAdminBackup, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	info := &BackupInfo{}
	info.Applied, _ = strconv.ParseUint(resp.Header.Get(HeaderBackupApplied), 10, 64)
	total := resp.ContentLength
	pw := &progressWriter{w: w, total: total, progress: progress}
	n, err := io.Copy(pw, resp.Body)
	info.Size = n
	if err != nil {
		return info, fmt.Errorf("client: backup: received %d of %d bytes: %w", n, total, err)
	}
	if total >= 0 && n != total {
		return info, fmt.Errorf("client: backup: received %d of %d bytes", n, total)
	}
	return info, nil
}

type progressWriter struct {
	w        io.Writer
	n, total int64
	progress func(written, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.progress != nil {
		p.progress(p.n, p.total)
	}
	return n, err
}
