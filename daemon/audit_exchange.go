package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// callAuditCheckpoint is the inter-site call that offers our latest
// signed audit checkpoint to another site: body a checkpointOffer, reply
// a checkpointHeld, or an error (errAuditFork, errBadCheckpoint).
const callAuditCheckpoint = "audit.checkpoint"

// checkpointOffer is a site's latest signed checkpoint and the proof that
// its tree extends the one of size From (the size the receiver holds, as
// the sender believes; -1 when it does not know, and no proof).
type checkpointOffer struct {
	Note  []byte      `json:"note"`
	From  int64       `json:"from"`
	Proof []tlog.Hash `json:"proof,omitempty"`
}

// checkpointHeld is the receiver's answer: the size of the sender's log
// it holds a checkpoint of after the call (0: none). NeedProof asks for
// the offer again with a proof from Held.
type checkpointHeld struct {
	Held      int64 `json:"held"`
	NeedProof bool  `json:"need_proof,omitempty"`
}

// maxOfferSize bounds an offer's body: a note and a proof in JSON.
const maxOfferSize = 2*trust.MaxCheckpointSize + 8<<10

// loop is the leader's audit duty: record a signing key change, then,
// every audit_checkpoint_interval, sign a checkpoint when the log grew
// and offer the latest to every other site.
func (a *auditor) loop(ctx context.Context) {
	t := time.NewTicker(a.cfg.AuditCheckpointInterval.Duration)
	defer t.Stop()
	keyDone := false
	for {
		if !keyDone {
			keyDone = a.checkKey(ctx)
		}
		if keyDone {
			a.checkpoint(ctx)
		}
		a.offerAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkpoint signs and commits a checkpoint of the log as this node has
// applied it, if it grew since the latest one.
func (a *auditor) checkpoint(ctx context.Context) {
	size := a.store.AuditSize()
	last, err := a.store.AuditCheckpoint(a.cfg.Site)
	switch {
	case err != nil && !errors.Is(err, queue.ErrNoCheckpoint):
		a.log.Warn("reading the latest audit checkpoint", "err", err)
		return
	case size == 0 || (err == nil && size <= last.Size):
		return
	}
	root, err := a.store.AuditTreeHash(size)
	if err != nil {
		a.log.Warn("audit tree hash", "size", size, "err", err)
		return
	}
	msg, err := trust.SignCheckpoint(a.sign, trust.Checkpoint{Site: a.cfg.Site, Size: size, Root: root})
	if err != nil {
		a.log.Error("signing an audit checkpoint", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.propose(pctx, &queue.Command{Op: queue.OpCheckpoint, Time: time.Now().UnixNano(),
		Checkpoint: &queue.CheckpointCmd{Site: a.cfg.Site, Size: size, Root: root, Note: msg}})
	if err == nil && res.Err != "" {
		err = errors.New(res.Err)
	}
	if err != nil {
		a.log.Warn("committing an audit checkpoint failed; will retry", "size", size, "err", err)
	}
}

// offerAll offers our latest checkpoint to every other site, at once.
func (a *auditor) offerAll(ctx context.Context) {
	cp, err := a.store.AuditCheckpoint(a.cfg.Site)
	if err != nil {
		return // none yet (or unreadable: checkpoint logged it)
	}
	var wg sync.WaitGroup
	for _, site := range a.cfg.remoteSites() {
		wg.Go(func() { a.offer(ctx, site, cp) })
	}
	wg.Wait()
}

// offer sends cp to site until it holds it, it refuses it, or a call
// fails (the next round tries again).
func (a *auditor) offer(ctx context.Context, site string, cp *queue.AuditCheckpoint) {
	a.mu.Lock()
	from, known := a.held[site]
	a.mu.Unlock()
	if known && from == cp.Size {
		return
	}
	if !known {
		from = -1
	}
	for range 3 { // a follower answering, or a wrong guess of what site holds, costs one more call each
		o := checkpointOffer{Note: cp.Note, From: from}
		if from > 0 && from < cp.Size {
			p, err := a.store.AuditProveTree(cp.Size, from)
			if err != nil {
				a.log.Warn("audit consistency proof", "site", site, "from", from, "to", cp.Size, "err", err)
				return
			}
			o.Proof = p
		}
		held, err := a.callOffer(ctx, site, &o)
		if errors.Is(err, consensus.ErrNotLeader) {
			continue // callOffer made the leader it names the one to call
		}
		if err != nil {
			return
		}
		a.mu.Lock()
		a.held[site] = held.Held
		delete(a.refused, site)
		a.mu.Unlock()
		switch {
		case held.Held > cp.Size:
			a.log.Error("another site holds a checkpoint of our audit log larger than our log: was this site restored from a backup?", "site", site, "held", held.Held, "ours", cp.Size)
			return
		case !held.NeedProof:
			return
		}
		from = held.Held
	}
}

// callOffer makes one offer to site. A refusal is logged (a fork: an
// alarm until site takes one of ours).
func (a *auditor) callOffer(ctx context.Context, site string, o *checkpointOffer) (*checkpointHeld, error) {
	body, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.SubmitTimeout.Duration)
	defer cancel()
	rep, _, err := a.link.CallSite(cctx, site, "", &transport.Call{Op: callAuditCheckpoint, Body: body})
	if err == nil {
		err = callCodes.Err(callAuditCheckpoint, rep)
	}
	if errors.Is(err, consensus.ErrNotLeader) && rep != nil && rep.Leader != "" {
		a.link.SetPreferred(site, rep.Leader) // as an ack naming the leader does
	}
	if err != nil {
		if errors.Is(err, errAuditFork) {
			a.mu.Lock()
			_, again := a.refused[site]
			a.refused[site] = err.Error()
			a.mu.Unlock()
			if !again {
				a.log.Error("audit_fork: another site refused our audit checkpoint as inconsistent with the one it holds", "site", site, "err", err)
			}
		} else {
			a.log.Debug("offering our audit checkpoint failed; will retry", "site", site, "err", err)
		}
		return nil, err
	}
	var held checkpointHeld
	if err := json.Unmarshal(rep.Body, &held); err != nil {
		return nil, fmt.Errorf("bad reply from %s: %w", site, err)
	}
	return &held, nil
}

// serveOffer takes another site's checkpoint (callAuditCheckpoint): it
// must be signed by a pinned key of the calling site; it is committed as
// held when it extends the one held (apply checks the offer's proof), and
// as a fork, answered with errAuditFork, when it does not; at most one is
// committed per site and half interval (offerSlot). Only the
// leader answers (a follower refuses with ErrNotLeader, naming the
// leader), so that what it holds is current; if the held checkpoint moved
// before the command applied, the reply asks for a proof from the new one.
func (a *auditor) serveOffer(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
	if a.isLeader != nil && !a.isLeader() {
		return nil, fmt.Errorf("%s: %w: offer audit checkpoints to the leader", a.cfg.Node, consensus.ErrNotLeader)
	}
	var o checkpointOffer
	if len(body) > maxOfferSize {
		return nil, fmt.Errorf("%w: offer of %d bytes (at most %d)", errBadCheckpoint, len(body), maxOfferSize)
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadCheckpoint, err)
	}
	if len(o.Proof) > queue.MaxCheckpointProof {
		return nil, fmt.Errorf("%w: proof of %d hashes (at most %d)", errBadCheckpoint, len(o.Proof), queue.MaxCheckpointProof)
	}
	note, c, err := trust.CanonicalCheckpoint(o.Note, a.ring) // what we keep: only what the site signed
	if err != nil {
		a.log.Warn("refused an audit checkpoint", "from", from, "err", err)
		return nil, fmt.Errorf("%w from %s: %v", errBadCheckpoint, from, err)
	}
	if c.Site != from.Site || c.Size <= 0 {
		return nil, fmt.Errorf("%w: a checkpoint of site %s (size %d) offered by %s", errBadCheckpoint, c.Site, c.Size, from)
	}
	if c.Site == a.cfg.Site || a.cfg.siteConfig(c.Site) == nil {
		return nil, fmt.Errorf("%w: site %s (offered by %s) is not another configured site", errBadCheckpoint, c.Site, from)
	}
	reply := func(held int64, need bool) ([]byte, error) {
		return json.Marshal(checkpointHeld{Held: held, NeedProof: need})
	}
	held, err := a.store.AuditCheckpoint(c.Site)
	switch {
	case errors.Is(err, queue.ErrNoCheckpoint):
		held = nil
	case err != nil:
		return nil, err
	}
	cmd := &queue.CheckpointCmd{Site: c.Site, Size: c.Size, Root: c.Root, Note: note}
	switch {
	case held == nil:
	case c.Size < held.Size:
		return reply(held.Size, false) // stale; the sender learns what we hold
	case c.Size == held.Size && c.Root == held.Root:
		return reply(held.Size, false)
	case c.Size == held.Size: // apply finds the fork
		cmd.From = held.Size
	case o.From != held.Size:
		return reply(held.Size, true)
	default: // apply checks the proof from From
		cmd.From, cmd.Proof = held.Size, o.Proof
	}
	if err := a.offerSlot(c.Site); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := a.propose(pctx, &queue.Command{Op: queue.OpCheckpoint, Time: time.Now().UnixNano(), Checkpoint: cmd})
	if err != nil {
		return nil, err
	}
	if res.Audit != nil && res.Audit.Moved { // another offer landed first: nothing kept
		return reply(res.Audit.Held, res.Audit.Held < c.Size)
	}
	if res.Err != "" {
		return nil, fmt.Errorf("%w: %s", errBadCheckpoint, res.Err)
	}
	if res.Audit != nil && res.Audit.Fork {
		heldSize := int64(0)
		if held != nil {
			heldSize = held.Size
		}
		a.log.Error("audit_fork: another site's audit checkpoint is inconsistent with the one held; kept as evidence",
			"site", c.Site, "size", c.Size, "held", heldSize, "from", from)
		return nil, fmt.Errorf("%w: site %s's checkpoint of size %d is inconsistent with its checkpoint of size %d that %s holds (kept as evidence)",
			errAuditFork, c.Site, c.Size, heldSize, a.cfg.Site)
	}
	return reply(c.Size, false)
}

// offerSlot takes site's turn to have a checkpoint committed: at most one
// per half audit_checkpoint_interval, so that another site cannot fill
// the log with checkpoints. Too soon is errRetryLater: the offerer waits
// for its next interval.
func (a *auditor) offerSlot(site string) error {
	gap := a.cfg.AuditCheckpointInterval.Duration / 2
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.offered[site]; ok && now.Sub(last) < gap {
		return fmt.Errorf("%w: one of site %s was committed %s ago (at most one per %s)", errRetryLater, site, now.Sub(last).Round(time.Millisecond), gap)
	}
	if a.offered == nil {
		a.offered = map[string]time.Time{}
	}
	a.offered[site] = now
	return nil
}

// checkRelayed checks a checkpoint another node of the site relayed to the
// leader: its note must be signed by a pinned key of its site, in its
// canonical encoding (trust.CanonicalCheckpoint), and state its size and
// root, so that a node's stolen key cannot make the site hold a
// checkpoint nobody signed, nor bytes of its own in one. Its site must be
// ours or a configured one: apply does not read the configuration.
func (a *auditor) checkRelayed(k *queue.CheckpointCmd) error {
	if k.Site != a.cfg.Site && a.cfg.siteConfig(k.Site) == nil {
		return fmt.Errorf("checkpoint of %s at %d: not a configured site", k.Site, k.Size)
	}
	note, c, err := trust.CanonicalCheckpoint(k.Note, a.ring)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if !bytes.Equal(note, k.Note) {
		return fmt.Errorf("checkpoint of %s at %d: its note is not in its canonical encoding (only the site's own signature)", k.Site, k.Size)
	}
	if c.Site != k.Site || c.Size != k.Size || c.Root != k.Root {
		return fmt.Errorf("checkpoint of %s at %d: its note says %s at %d with another root", k.Site, k.Size, c.Site, c.Size)
	}
	return nil
}

// outcome words an action's error for its audit record.
func outcome(err error) string {
	if err != nil {
		return "refused: " + err.Error()
	}
	return "done"
}
