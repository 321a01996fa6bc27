package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// ErrAuditBad is matched by audit verify's error when the log or a
// checkpoint does not verify (the error names the first bad one).
var ErrAuditBad = errors.New("audit log does not verify")

// auditPage is how many entries (and checkpoints) verify reads per request.
const auditPage = 5000

func newAuditVerifyCmd(e *env) *cobra.Command {
	var keys string
	cmd := &cobra.Command{
		Use:   "verify [--keys FILE]",
		Short: "Check the whole audit log against its signed checkpoints",
		Long: `verify reads the whole audit log from the node, page by page, and checks it
here: every record decodes and matches the leaf hash stored when it was
appended; the tree rebuilt from the records has, at every checkpoint this
site signed, the root the checkpoint states; every checkpoint's signature
verifies with the keyring; and the checkpoints held of every other site
each extend the one before (their consistency proofs check). Forks kept of
another site are listed as warnings. Progress goes to standard error.

--keys is the keyring (sites.pub) to check signatures with; without it the
keyring the node pins is used, which proves less (the node could lie).

It exits non-zero naming the first entry or checkpoint that does not
verify.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return e.auditVerify(c.Context(), keys)
		},
	}
	cmd.Flags().StringVar(&keys, "keys", "", "keyring `FILE` (sites.pub) pinning every site's public keys (default: the node's)")
	return cmd
}

// frontier is the right edge of a Merkle tree being built record by
// record: the roots of its complete subtrees, largest first. Its memory
// is logarithmic in the tree's size.
type frontier struct {
	hashes []tlog.Hash
	sizes  []int64
	n      int64
}

func (f *frontier) push(h tlog.Hash) {
	f.hashes, f.sizes = append(f.hashes, h), append(f.sizes, 1)
	f.n++
	for k := len(f.sizes); k >= 2 && f.sizes[k-2] == f.sizes[k-1]; k = len(f.sizes) {
		f.hashes[k-2] = tlog.NodeHash(f.hashes[k-2], f.hashes[k-1])
		f.sizes[k-2] *= 2
		f.hashes, f.sizes = f.hashes[:k-1], f.sizes[:k-1]
	}
}

// root is the tree hash of the records pushed (RFC 6962, as tlog.TreeHash).
func (f *frontier) root() tlog.Hash {
	if len(f.hashes) == 0 {
		return tlog.Hash{}
	}
	h := f.hashes[len(f.hashes)-1]
	for i := len(f.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(f.hashes[i], h)
	}
	return h
}

func (e *env) auditVerify(ctx context.Context, keysFile string) error {
	c := e.client()
	var ringData []byte
	var err error
	if keysFile != "" {
		ringData, err = os.ReadFile(keysFile)
	} else {
		ringData, err = c.AuditKeys(ctx)
		writeProgress(e.stderr, "checking signatures with the keyring the node pins (give --keys FILE to use your own copy)")
	}
	if err != nil {
		return fmt.Errorf("audit verify: keyring: %w", err)
	}
	ring, err := trust.ParseKeyring(ringData)
	if err != nil {
		return fmt.Errorf("audit verify: keyring: %w", err)
	}
	first, err := c.AuditEntries(ctx, 0, 1)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	site := first.Site
	own, err := allCheckpoints(ctx, c, site, false)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	size := first.Size
	if len(own) > 0 {
		size = max(size, own[len(own)-1].Size)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrAuditBad, fmt.Sprintf(format, args...))
	}
	var f frontier
	next, start, lastReport := 0, time.Now(), time.Now()
	for f.n < size {
		page, err := c.AuditEntries(ctx, f.n, auditPage)
		if err != nil {
			return fmt.Errorf("audit verify: entries from %d: %w", f.n, err)
		}
		if len(page.Entries) == 0 {
			return bad("the log has %d entries, but checkpoint of size %d was signed", f.n, size)
		}
		for _, en := range page.Entries {
			if en.Index != f.n {
				return bad("entry %d came as index %d", f.n, en.Index)
			}
			h := tlog.RecordHash(en.Record)
			if !bytes.Equal(h[:], en.Hash) {
				return bad("entry %d: its record does not match the hash stored when it was appended (changed since)", en.Index)
			}
			if _, err := queue.DecodeAuditRecord(en.Record); err != nil {
				return bad("entry %d: %v", en.Index, err)
			}
			f.push(h)
			for next < len(own) && own[next].Size == f.n {
				if err := checkOwn(ring, site, &own[next], f.root()); err != nil {
					return bad("%v", err)
				}
				next++
			}
		}
		if time.Since(lastReport) > 2*time.Second {
			writeProgress(e.stderr, "%d of %d entries verified (%.0f%%)", f.n, size, 100*float64(f.n)/float64(max(size, 1)))
			lastReport = time.Now()
		}
	}
	if next < len(own) {
		return bad("checkpoint of size %d is beyond the %d entries read", own[next].Size, f.n)
	}
	fmt.Fprintf(e.stdout, "site %s: %d entries verified, %d signed checkpoints verified (latest of size %d), in %v\n",
		safe(site), f.n, len(own), lastSize(own), time.Since(start).Round(time.Millisecond))
	for _, other := range ring.Sites() {
		if other == site {
			continue
		}
		held, err := allCheckpoints(ctx, c, other, false)
		if client.IsCode(err, client.CodeUnknownSite) {
			continue // pinned in the keyring, not configured on the node
		}
		if err != nil {
			return fmt.Errorf("audit verify: checkpoints of %s: %w", other, err)
		}
		if err := checkHeld(ring, other, held); err != nil {
			return bad("%v", err)
		}
		forks, err := allCheckpoints(ctx, c, other, true)
		if err != nil {
			return fmt.Errorf("audit verify: forks of %s: %w", other, err)
		}
		for _, fk := range forks {
			signed := "signed by " + safe(other)
			if _, err := trust.OpenCheckpoint([]byte(fk.Note), ring); err != nil {
				signed = "its signature does not verify: " + err.Error()
			}
			writeProgress(e.stderr, "warning: site %s: checkpoint of size %d kept as a fork (inconsistent with the one held of size %d), %s", safe(other), fk.Size, fk.Prev, signed)
		}
		fmt.Fprintf(e.stdout, "site %s: %d held checkpoints consistent (latest of size %d), %d forks kept\n", safe(other), len(held), lastSize(held), len(forks))
	}
	return nil
}

func lastSize(cps []client.AuditCheckpoint) int64 {
	if len(cps) == 0 {
		return 0
	}
	return cps[len(cps)-1].Size
}

// allCheckpoints reads every checkpoint of site (or its forks), by size.
func allCheckpoints(ctx context.Context, c *client.Client, site string, forks bool) ([]client.AuditCheckpoint, error) {
	var out []client.AuditCheckpoint
	after := int64(0)
	for {
		page, err := c.AuditCheckpoints(ctx, site, forks, after, auditPage)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Checkpoints...)
		if len(page.Checkpoints) < auditPage || forks { // forks: all of a size come in one page
			return out, nil
		}
		after = page.Checkpoints[len(page.Checkpoints)-1].Size
	}
}

// openCheckpoint verifies cp's note with ring and that it states cp's
// site, size and root.
func openCheckpoint(ring *trust.Keyring, site string, cp *client.AuditCheckpoint) (*trust.Checkpoint, error) {
	n, err := trust.OpenCheckpoint([]byte(cp.Note), ring)
	if err != nil {
		return nil, fmt.Errorf("checkpoint of %s of size %d: %v", site, cp.Size, err)
	}
	if n.Site != site || n.Size != cp.Size || !bytes.Equal(n.Root[:], cp.Root) {
		return nil, fmt.Errorf("checkpoint of %s of size %d: its note states %s at size %d, root %x", site, cp.Size, n.Site, n.Size, n.Root[:])
	}
	return n, nil
}

// checkOwn checks one of our checkpoints against the root rebuilt from
// the entries.
func checkOwn(ring *trust.Keyring, site string, cp *client.AuditCheckpoint, root tlog.Hash) error {
	n, err := openCheckpoint(ring, site, cp)
	if err != nil {
		return err
	}
	if n.Root != root {
		return fmt.Errorf("checkpoint of %s of size %d: signed root %s, but the entries give %s (an entry before index %d was changed)", site, cp.Size, n.Root, root, cp.Size)
	}
	return nil
}

// checkHeld checks another site's held checkpoints: each signed, each
// extending the one before by its consistency proof.
func checkHeld(ring *trust.Keyring, site string, held []client.AuditCheckpoint) error {
	var prev *trust.Checkpoint
	for i := range held {
		cp := &held[i]
		n, err := openCheckpoint(ring, site, cp)
		if err != nil {
			return err
		}
		if prev != nil {
			if cp.Prev != prev.Size {
				return fmt.Errorf("held checkpoint of %s of size %d: its proof starts at size %d, but the one before is of size %d", site, cp.Size, cp.Prev, prev.Size)
			}
			proof := make(tlog.TreeProof, len(cp.Proof))
			for j, h := range cp.Proof {
				if len(h) != len(tlog.Hash{}) {
					return fmt.Errorf("held checkpoint of %s of size %d: malformed proof", site, cp.Size)
				}
				copy(proof[j][:], h)
			}
			if err := tlog.CheckTree(proof, n.Size, n.Root, prev.Size, prev.Root); err != nil {
				return fmt.Errorf("held checkpoint of %s of size %d is not consistent with the one of size %d: %v", site, cp.Size, prev.Size, err)
			}
		}
		prev = n
	}
	return nil
}
