package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
)

// A node whose disk is full (less than consensus.DefaultStorageReserve
// free in data_dir's filesystem, or a write that failed with ENOSPC or
// EDQUOT) stands by: its Raft instance stops, so it neither leads nor votes
// nor takes entries, and its socket answers submits with 507 storage_full
// at once. The consensus package checks the space every second and brings
// Raft back, catching up, once the reserve and a quarter more are free.
//
// The watchdog keeps being pinged while a node stands by: it is a
// deliberate, self-healing state in which the node answers its socket, and
// a restart would neither free space nor help.

// storageFull returns, while this node's disk is full, an error naming
// data_dir and its free bytes; nil otherwise. It looks at the free space
// itself (a statfs, microseconds), so a submit is refused as soon as the
// disk is full, before Raft's own check (every second) stands the node by.
func (h *health) storageFull() error {
	var cause error
	if h.raft != nil {
		cause = h.raft.StorageFull()
	}
	if cause == nil && h.store != nil {
		if err := h.store.Err(); err != nil && isNoSpace(err) {
			cause = err
		}
	}
	free := "unknown"
	var st syscall.Statfs_t
	if syscall.Statfs(h.cfg.DataDir, &st) == nil {
		b := st.Bavail * uint64(st.Bsize)
		free = fmt.Sprint(b)
		if cause == nil && b < consensus.DefaultStorageReserve {
			cause = consensus.ErrStorageFull
		}
	}
	if cause == nil {
		return nil
	}
	return fmt.Errorf("storage full on node %s: data_dir %s has %s bytes free (below the reserve of %d); this node stores nothing until space is freed, submit through another node of site %s: %w",
		h.cfg.Node, h.cfg.DataDir, free, uint64(consensus.DefaultStorageReserve), h.cfg.Site, cause)
}

// isNoSpace reports whether err is a write that failed for lack of space.
func isNoSpace(err error) bool {
	if errors.Is(err, consensus.ErrStorageFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}

// writeStorageFull answers 507 storage_full.
func (a *apiServer) writeStorageFull(w http.ResponseWriter) {
	err := a.health.storageFull()
	if err == nil {
		err = errors.New("storage full on node " + a.cfg.Node)
	}
	writeError(w, http.StatusInsufficientStorage, client.CodeStorageFull, err.Error())
}
