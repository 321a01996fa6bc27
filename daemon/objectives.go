package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// Read objectives. Each precedence of each mailbox has a read objective
// (mailbox.objectives, ACP 121's by default): a message not read
// (acknowledged at its destination) by submitted_at + objective is
// overdue, at both sites:
//
//   - at the destination, an unread inbox message, against the objective
//     of its mailbox in this site's config;
//   - at the origin, an outbound message neither read (no read receipt
//     yet) nor expired, against the objective the destination stated for
//     its mailbox (remoteMailboxes); until the destination's list is
//     known, the origin's own mailbox of the same name's, else the
//     defaults.
//
// Every node runs an overdueWatch: once a second it asks the store
// (queue.Store.Overdue, which reads only the overdue messages) and keeps
// the answer for status (alarms, Status.Overdue, MailboxStatus.Overdue)
// and the metric, and logs each message that becomes overdue and each
// that stops being so (read, expired or purged). Link tests, drills and
// expiry notices have no objective.

// objectives answers for the read objective of a group of messages.
type objectives struct {
	local  *mailboxes
	remote *remoteMailboxes
}

// of returns g's read objective.
func (o *objectives) of(g queue.UnreadGroup) time.Duration {
	p := g.Precedence
	if !p.Valid() {
		p = queue.Routine
	}
	if g.Direction == queue.Outbound {
		if mb, _ := o.remote.lookup(g.Site, g.Mailbox); mb != nil {
			return o.remote.objective(g.Site, g.Mailbox, p)
		}
	}
	if mb := o.local.get(g.Mailbox); mb != nil {
		return mb.objectives[p]
	}
	return defaultObjectives[p]
}

// ofMessage returns the group of st's message and its objective; ok is
// false for a message no objective applies to (link test, drill, notice).
func (o *objectives) ofMessage(st *queue.Status) (within time.Duration, ok bool) {
	m := &st.Message
	if m.Flags&(queue.FlagLinkTest|queue.FlagDrill|queue.FlagNotice) != 0 {
		return 0, false
	}
	g := queue.UnreadGroup{Direction: st.Direction, Site: m.Origin, Mailbox: m.Mailbox, Precedence: m.Precedence}
	if st.Direction == queue.Outbound {
		g.Site = m.Dest
	}
	return o.of(g), true
}

// annotate adds the read objective, when it was due and whether it was
// met to v, the view of st (GET /v1/messages/{id}).
func (o *objectives) annotate(v *client.Message, st *queue.Status) {
	within, ok := o.ofMessage(st)
	if !ok {
		return
	}
	due := time.Unix(0, st.SubmittedAt+int64(within)).UTC()
	v.ReadObjective, v.ReadDue = within.String(), &due
	if st.State == queue.Read && st.ReadAt != 0 {
		met := st.ReadAt <= due.UnixNano()
		v.ObjectiveMet = &met
	}
}

// bundle returns the objective of st's message for its evidence bundle,
// or nil.
func (o *objectives) bundle(st *queue.Status) *trust.BundleObjective {
	within, ok := o.ofMessage(st)
	if !ok {
		return nil
	}
	var readAt int64
	if st.State == queue.Read {
		readAt = st.ReadAt
	}
	return trust.NewObjective(&st.Message, within, readAt)
}

// Bounds of one check: Status.Overdue lists at most maxOverdueListed
// messages, the log follows the overdueTracked due first, and a check
// reads at most overdueScan index entries.
const (
	maxOverdueListed = 100
	overdueTracked   = 1000
	overdueScan      = 100000
	overdueEvery     = time.Second
)

// overdueWatch checks the read objectives of one node's store.
type overdueWatch struct {
	store *queue.Store
	obj   *objectives
	log   *slog.Logger

	mu      sync.Mutex
	rep     *queue.OverdueReport             // the last check's; nil before the first
	tracked map[overdueKey]queue.OverdueItem // the overdue messages logged

	lastErr string // the last check's error, logged once (run's goroutine only)
}

// overdueKey names one message of the unread index.
type overdueKey struct {
	dir  queue.Direction
	site string
	p    queue.Precedence
	seq  uint64
}

func newOverdueWatch(store *queue.Store, obj *objectives, log *slog.Logger) *overdueWatch {
	return &overdueWatch{store: store, obj: obj, log: log.With("component", "objectives"), tracked: map[overdueKey]queue.OverdueItem{}}
}

// run checks every overdueEvery until ctx ends.
func (w *overdueWatch) run(ctx context.Context) {
	t := time.NewTicker(overdueEvery)
	defer t.Stop()
	for {
		w.check(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check asks the store which messages are overdue at now, keeps the
// answer and logs the changes. Only run's goroutine (or a test) calls it.
func (w *overdueWatch) check(now time.Time) {
	rep, err := w.store.Overdue(queue.OverdueQuery{Now: now.UnixNano(), Max: overdueTracked, Scan: overdueScan,
		Objective: func(g queue.UnreadGroup) int64 { return int64(w.obj.of(g)) }})
	if err != nil {
		if err.Error() != w.lastErr {
			w.log.Warn("read objectives: cannot read the unread messages; status keeps the last answer", "err", err)
		}
		w.lastErr = err.Error()
		return
	}
	w.lastErr = ""
	seen := make(map[overdueKey]queue.OverdueItem, len(rep.Items))
	for _, it := range rep.Items {
		seen[overdueKey{it.Direction, it.Site, it.Precedence, it.Seq}] = it
	}
	w.mu.Lock()
	old := w.tracked
	w.rep, w.tracked = rep, seen
	w.mu.Unlock()
	for k, it := range seen {
		if _, ok := old[k]; !ok {
			w.log.Warn("ALARM: read objective missed: message not read in time", w.attrs(it)...)
		}
	}
	for k, it := range old {
		if _, ok := seen[k]; ok {
			continue
		}
		state := "purged"
		if st, err := w.store.Lookup(it.ID); err == nil {
			state = st.State.String()
		}
		if state == queue.Delivered.String() || state == queue.Queued.String() {
			// Still unread: it left the overdueTracked due first, or its
			// objective changed.
			state = "no longer among the overdue followed"
		}
		w.log.Info("read objective: overdue message cleared", append(w.attrs(it), "state", state)...)
	}
}

func (w *overdueWatch) attrs(it queue.OverdueItem) []any {
	return []any{"id", it.ID, "direction", string(it.Direction), "site", it.Site,
		"mailbox", queue.MailboxName(it.Mailbox), "precedence", it.Precedence.String(),
		"submitted_at", time.Unix(0, it.SubmittedAt).UTC(), "due", time.Unix(0, it.Due).UTC()}
}

// last returns the last check's report (nil before the first).
func (w *overdueWatch) last() *queue.OverdueReport {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rep
}

// list is Status.Overdue: at most maxOverdueListed, due first.
func (w *overdueWatch) list() []client.Overdue {
	rep := w.last()
	if rep == nil {
		return nil
	}
	var out []client.Overdue
	for _, it := range rep.Items[:min(len(rep.Items), maxOverdueListed)] {
		out = append(out, client.Overdue{ID: it.ID, Direction: string(it.Direction), Site: it.Site,
			Mailbox: queue.MailboxName(it.Mailbox), Precedence: it.Precedence.String(),
			Submitted: time.Unix(0, it.SubmittedAt).UTC(), Due: time.Unix(0, it.Due).UTC()})
	}
	return out
}

// inbound returns the overdue inbox messages of each mailbox (display
// name) by precedence name, for MailboxStatus.Overdue.
func (w *overdueWatch) inbound() map[string]map[string]int {
	out := map[string]map[string]int{}
	rep := w.last()
	if rep == nil {
		return out
	}
	for g, n := range rep.Counts {
		if g.Direction != queue.Inbound {
			continue
		}
		name := queue.MailboxName(g.Mailbox)
		if out[name] == nil {
			out[name] = map[string]int{}
		}
		out[name][g.Precedence.String()] += n
	}
	return out
}

// groups returns the groups with overdue messages, sorted, with their
// counts.
func (w *overdueWatch) groups(rep *queue.OverdueReport) []queue.UnreadGroup {
	var gs []queue.UnreadGroup
	for g := range rep.Counts {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b queue.UnreadGroup) int {
		return strings.Compare(fmt.Sprint(a.Direction, a.Site, "/", a.Mailbox, a.Precedence), fmt.Sprint(b.Direction, b.Site, "/", b.Mailbox, b.Precedence))
	})
	return gs
}

// alarms words one read_overdue alarm per group with overdue messages.
func (w *overdueWatch) alarms() []string {
	rep := w.last()
	if rep == nil {
		return nil
	}
	atLeast := ""
	if rep.Truncated {
		atLeast = "at least "
	}
	var out []string
	for _, g := range w.groups(rep) {
		n := rep.Counts[g]
		within := w.obj.of(g)
		oldest := ""
		if i := slices.IndexFunc(rep.Items, func(it queue.OverdueItem) bool { return it.UnreadGroup == g }); i >= 0 {
			it := rep.Items[i]
			oldest = fmt.Sprintf(" (first %s, due %s)", it.ID, time.Unix(0, it.Due).UTC().Format(time.RFC3339))
		}
		if g.Direction == queue.Outbound {
			out = append(out, fmt.Sprintf("read objective missed: %s%d %s messages to %s/%s not read within %v%s",
				atLeast, n, g.Precedence, g.Site, queue.MailboxName(g.Mailbox), within, oldest))
		} else {
			out = append(out, fmt.Sprintf("read objective missed: %s%d %s messages from %s in mailbox %s not acknowledged within %v%s",
				atLeast, n, g.Precedence, g.Site, queue.MailboxName(g.Mailbox), within, oldest))
		}
	}
	return out
}

// overdueCollector reports hotline_overdue_messages{direction, mailbox,
// precedence}: inbound by this site's mailbox, outbound by SITE/MAILBOX
// of the destination; every configured mailbox's inbound series from
// the start.
type overdueCollector struct {
	w     *overdueWatch
	local *mailboxes
}

var overdueDesc = prometheus.NewDesc("hotline_overdue_messages",
	"Messages past their read objective and not read: inbound (unacknowledged in this site's mailbox) and outbound (no read receipt from the destination SITE/MAILBOX yet), by precedence.",
	[]string{"direction", "mailbox", "precedence"}, nil)

func (c *overdueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- overdueDesc }

func (c *overdueCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ dir, mailbox, p string }
	counts := map[key]int{}
	for _, name := range c.local.names {
		for _, p := range queue.Precedences {
			counts[key{string(queue.Inbound), name, p.String()}] = 0
		}
	}
	if rep := c.w.last(); rep != nil {
		for g, n := range rep.Counts {
			k := key{string(g.Direction), queue.MailboxName(g.Mailbox), g.Precedence.String()}
			if g.Direction == queue.Outbound {
				k.mailbox = g.Site + "/" + k.mailbox
			}
			counts[k] += n
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(overdueDesc, prometheus.GaugeValue, float64(n), k.dir, k.mailbox, k.p)
	}
}
