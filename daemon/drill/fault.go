package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/internal/ctxsleep"
)

// runFault applies the scenario's fault a third into the stream and, for
// cuts, restores it two thirds in. A cut is always restored before
// runFault returns, also when ctx ends early.
func (d *drill) runFault(ctx context.Context) {
	third := d.o.Duration / 3
	if ctxsleep.Sleep(ctx, time.Until(d.start.Add(third))) != nil {
		return // nothing applied, nothing to undo
	}
	if d.plan.Transfer != "" {
		d.transfer(ctx)
		d.mu.Lock()
		d.restoreAt = d.start.Add(2 * third)
		d.mu.Unlock()
		return
	}
	targets := d.cut(ctx)
	defer d.restore(ctx, targets)
	ctxsleep.Sleep(ctx, time.Until(d.start.Add(2*third)))
}

// cut takes the plan's paths down (silently) on every origin node, all at
// once, and returns what it tried.
func (d *drill) cut(ctx context.Context) []cutTarget {
	var targets []cutTarget
	for _, node := range d.plan.Nodes {
		for _, path := range d.plan.Cut {
			targets = append(targets, cutTarget{node: node, path: path})
		}
	}
	at := time.Now()
	d.mu.Lock()
	d.faultAt = at
	d.mu.Unlock()
	var wg sync.WaitGroup
	for i := range targets {
		wg.Go(func() {
			t := &targets[i]
			cctx, cancel := context.WithTimeout(ctx, adminTimeout)
			defer cancel()
			_, t.err = d.c.PathDown(cctx, d.nodeArg(t.node), t.path, client.ModeDrop)
		})
	}
	wg.Wait()
	var ok []cutTarget
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range targets {
		if t.err == nil {
			ok = append(ok, t)
			continue
		}
		err := client.AdminError(fmt.Sprintf("cut %s on %s", t.path, t.node), t.err)
		d.faultErrs = append(d.faultErrs, fmt.Errorf("drill: %w", err))
		d.events = append(d.events, event{At: time.Now(), What: "FAILED: " + err.Error()})
	}
	if len(ok) > 0 {
		d.events = append(d.events, event{At: at, What: fmt.Sprintf("cut %s (silent) in %d ms",
			describeTargets(ok), time.Since(at).Milliseconds())})
	}
	return targets
}

// restore brings every path cut (or perhaps cut) back up, under a fresh
// context so an interrupted drill still repairs the link, retrying
// retryable errors for up to adminTimeout. What it cannot bring up it
// reports loudly, with the command to do it by hand.
func (d *drill) restore(parent context.Context, targets []cutTarget) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), adminTimeout)
	defer cancel()
	var todo []cutTarget
	for _, t := range targets {
		var ae *client.APIError
		if t.err == nil || !errors.As(t.err, &ae) || ae.Status >= http.StatusInternalServerError {
			todo = append(todo, cutTarget{node: t.node, path: t.path}) // a cut that failed ambiguously may have landed
		}
	}
	at := time.Now()
	d.mu.Lock()
	d.restoreAt = at
	d.mu.Unlock()
	var wg sync.WaitGroup
	for i := range todo {
		wg.Go(func() {
			t := &todo[i]
			delay := 250 * time.Millisecond
			for {
				_, t.err = d.c.PathUp(ctx, d.nodeArg(t.node), t.path)
				if t.err == nil || !client.Retryable(t.err) || ctxsleep.Sleep(ctx, delay) != nil {
					return
				}
				delay = min(2*delay, 2*time.Second)
			}
		})
	}
	wg.Wait()
	var ok []cutTarget
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range todo {
		if t.err == nil {
			ok = append(ok, t)
			continue
		}
		err := client.AdminError(fmt.Sprintf("restore %s on %s", t.path, t.node), t.err)
		d.faultErrs = append(d.faultErrs, fmt.Errorf("drill: %w", err))
		d.events = append(d.events, event{At: time.Now(), What: "FAILED: " + err.Error()})
		fmt.Fprintf(d.log, "drill: WARNING: path %s on %s may still be down: %v; bring it up with: hotlinectl path up %s --node %s\n",
			t.path, t.node, t.err, t.path, t.node)
	}
	if len(ok) > 0 {
		d.events = append(d.events, event{At: at, What: fmt.Sprintf("restored %s in %d ms",
			describeTargets(ok), time.Since(at).Milliseconds())})
	}
}

// transfer moves the leadership of the plan's site.
func (d *drill) transfer(ctx context.Context) {
	site := ""
	if d.plan.Transfer != d.plan.From {
		site = d.plan.Transfer
	}
	at := time.Now()
	d.mu.Lock()
	d.faultAt = at
	d.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	r, err := d.c.TransferLeader(tctx, site, "")
	took := time.Since(at).Milliseconds()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		err = client.AdminError("leadership transfer of "+d.plan.Transfer, err)
		d.faultErrs = append(d.faultErrs, fmt.Errorf("drill: %w", err))
		d.events = append(d.events, event{At: at, What: "FAILED: " + err.Error()})
		return
	}
	d.events = append(d.events, event{At: at, What: fmt.Sprintf("leadership of %s: %s → %s in %d ms", r.Site, orDash(r.From), r.To, took)})
}

// nodeArg names node to the daemon serving the socket.
func (d *drill) nodeArg(node string) string {
	if node == d.plan.Self {
		return ""
	}
	return node
}

// cutTarget is one (node, path) a drill cuts, and how that went.
type cutTarget struct {
	node, path string
	err        error // of the cut
}

// describeTargets lists (node, path) pairs compactly, grouping nodes with
// the same paths: "fiber, radio on alpha-1, alpha-2; fiber on alpha-3".
// Nodes keep their first-seen order.
func describeTargets(targets []cutTarget) string {
	var nodes []string
	paths := make(map[string][]string)
	for _, t := range targets {
		if _, ok := paths[t.node]; !ok {
			nodes = append(nodes, t.node)
		}
		paths[t.node] = append(paths[t.node], t.path)
	}
	var groups []string
	var groupNodes [][]string
	for _, n := range nodes {
		key := strings.Join(paths[n], ", ")
		if i := slices.Index(groups, key); i >= 0 {
			groupNodes[i] = append(groupNodes[i], n)
			continue
		}
		groups = append(groups, key)
		groupNodes = append(groupNodes, []string{n})
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = g + " on " + strings.Join(groupNodes[i], ", ")
	}
	return strings.Join(parts, "; ")
}
