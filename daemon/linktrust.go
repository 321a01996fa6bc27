package daemon

import (
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
)

// Signatures on the link (package forward's Notary, with this site's keys
// of sitekeys.go): this node signs the batches and delivery proofs it
// sends and checks those it receives. A signature that does not hold is
// refused, counted, logged and raised as the bad_signature alarm, at the
// node that refused it and, through the refusal's code, at the sender.

// notary signs with the site's key and checks with the pinned keyring.
func (n *Node) notary() *forward.Notary {
	return &forward.Notary{Key: n.site.sign, Ring: n.site.ring}
}

// refusalAlarmFor is how long a refused signature keeps the bad_signature
// alarm raised.
const refusalAlarmFor = 5 * time.Minute

// What a refusal was about (trustRefusals.record).
const (
	refusedBatch = "batch" // we refused a site's batch (or a follower's relayed command)
	refusedAck   = "ack"   // a site's delivery proof in an ack did not hold here
	refusedOurs  = "ours"  // a site refused the signature of our batch
	// A delivery of ours to the site, relayed by a node of this site,
	// whose proofs did not hold (checkRelayedDelivered).
	refusedRelayed = "relayed"
)

// trustRefusals counts the signatures on the link that did not hold
// (hotline_refused_batches_total, hotline_refused_acks_total) and keeps
// the latest refusal of each site and kind for the bad_signature alarm.
// Safe for concurrent use.
type trustRefusals struct {
	batches *prometheus.CounterVec // {from, reason}
	acks    *prometheus.CounterVec // {from, reason}

	recent *recentEvents[refusalKey] // the latest refusal's error as its words
}

type refusalKey struct{ site, what string }

// newTrustRefusals makes the counters, every label at 0, and registers
// them with reg.
func newTrustRefusals(cfg *Config, reg *prometheus.Registry) *trustRefusals {
	r := &trustRefusals{recent: newRecentEvents[refusalKey](refusalAlarmFor, 0),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_refused_batches_total",
			Help: "Batches from another site (or inbound commands relayed by a follower) refused here because their signature did not hold (an alarm), by sending site and reason: " + fmt.Sprint(forward.Reasons) + "."},
			[]string{"from", "reason"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_refused_acks_total",
			Help: "Acks from a destination site whose delivery proof did not hold here (an alarm; the batch is sent again), by site and reason."},
			[]string{"from", "reason"})}
	for _, s := range cfg.remoteSites() {
		for _, reason := range forward.Reasons {
			r.batches.WithLabelValues(s, reason)
			r.acks.WithLabelValues(s, reason)
		}
	}
	reg.MustRegister(r.batches, r.acks)
	return r
}

// record counts a signature of site that did not hold (or our own that
// site refused: refusedOurs) and raises the alarm. err names what failed;
// the caller logs it. It reports whether this refusal raised the alarm
// anew (the first of site and kind after refusalAlarmFor without one).
func (r *trustRefusals) record(site, what string, err error) (fresh bool) {
	reason := forward.Reason(err)
	switch what {
	case refusedBatch, refusedRelayed:
		r.batches.WithLabelValues(site, reason).Inc()
	case refusedAck:
		r.acks.WithLabelValues(site, reason).Inc()
	}
	return r.recent.record(refusalKey{site, what}, err.Error(), time.Now())
}

// alarms words the refusals of the last refusalAlarmFor, by site.
func (r *trustRefusals) alarms(now time.Time) []string {
	if r == nil {
		return nil
	}
	var out []string
	r.recent.live(now, func(k refusalKey, s recentEvent) {
		var what string
		switch k.what {
		case refusedBatch:
			what = fmt.Sprintf("refused %d batches from %s", s.n, k.site)
		case refusedAck:
			what = fmt.Sprintf("refused %d acks from %s (their delivery proof)", s.n, k.site)
		case refusedRelayed:
			what = fmt.Sprintf("refused %d records of delivery to %s relayed by a node of this site", s.n, k.site)
		default:
			what = fmt.Sprintf("%s refused the signature of %d of our batches", k.site, s.n)
		}
		out = append(out, fmt.Sprintf("signature on the link: %s since %s, last at %s: %s",
			what, s.since.UTC().Format(time.RFC3339), s.at.UTC().Format(time.RFC3339), s.words))
	})
	slices.Sort(out)
	return out
}

// untrustedHook is forward.Hooks.Untrusted: the forwarders log.
func (n *Node) untrustedHook(site string, ack bool, err error) {
	what := refusedOurs
	if ack {
		what = refusedAck
	}
	n.auditRefusal(site, what, err, n.metrics.refusals.record(site, what, err))
}

// auditRefusal records a refusal in the audit log when it raised the
// bad_signature alarm anew (fresh): one record per site and kind while
// refusals go on, so a peer cannot flood the log; the metric counts each.
func (n *Node) auditRefusal(site, what string, err error, fresh bool) {
	if !fresh {
		return
	}
	detail := fmt.Sprintf("%s: %s (%s); later refusals within %v are counted in the metrics, not recorded", site, what, forward.Reason(err), refusalAlarmFor)
	n.auditRecord(n.ctx, "refused_signature", detail)
}

// refuseUntrusted counts, logs and alarms a batch (or a relayed command)
// of site whose signature did not hold; err is what the sender is told.
func (n *Node) refuseUntrusted(site string, from fmt.Stringer, err error) {
	n.auditRefusal(site, refusedBatch, err, n.metrics.refusals.record(site, refusedBatch, err))
	n.log.Error("refused a batch: its signature does not hold", "site", site, "from", from, "reason", forward.Reason(err), "err", err)
}

// checkRelayedProof checks again, on the leader, the evidence of an
// inbound command (or an ack's) that a follower relayed, site being the
// other site it is about (forward.Notary.CheckCommand): the follower
// checked it, but a node's stolen key must not be enough to have a forged
// batch applied. A refusal is counted and alarmed like a batch's (and
// logged by servePropose).
func (n *Node) checkRelayedProof(site string, cmd *queue.Command) error {
	err := n.notary().CheckCommand(cmd)
	if err != nil {
		n.auditRefusal(site, refusedBatch, err, n.metrics.refusals.record(site, refusedBatch, err))
	}
	return err
}

// checkRelayedDelivered checks a Delivered a follower relayed: a node
// records a delivery only with the destination's proofs (package
// forward's AckReporter), so a stolen node key must not be enough to
// mark a channel delivered. Its proofs must hold (checkRelayedProof) and
// start at most at the sequence after what the state records delivered
// (queue's checks, when it decoded, already tie UpTo to the end of the
// run they cover, each continuing the one before). Only a fenced
// channel's resync (forward/resync.go: the destination's last, after a
// restore) carries none. A refusal is counted and alarmed as a relayed
// command (refusedRelayed), not as the destination's.
func (n *Node) checkRelayedDelivered(cmd *queue.Command) error {
	d := cmd.Delivered
	var err error
	switch {
	case len(d.Proofs) == 0 && n.store.OutFenced(d.Dest, d.Precedence):
		return nil
	case len(d.Proofs) == 0:
		err = fmt.Errorf("delivered to %s (%s) up to %d: %w (only a fenced channel's resync has none)", d.Dest, d.Precedence, d.UpTo, forward.ErrNoProof)
	default:
		var acked uint64
		for _, ch := range n.store.Outbound() {
			if ch.Dest == d.Dest && ch.Precedence == d.Precedence {
				acked = ch.Acked
			}
		}
		if first := d.Proofs[0].Evidence.First; first > acked+1 {
			err = fmt.Errorf("delivered to %s (%s) up to %d: %w: its proofs start at %d, after a gap (recorded delivered up to %d)",
				d.Dest, d.Precedence, d.UpTo, forward.ErrMismatch, first, acked)
		} else {
			err = n.notary().CheckCommand(cmd)
		}
	}
	if err != nil {
		n.auditRefusal(d.Dest, refusedRelayed, err, n.metrics.refusals.record(d.Dest, refusedRelayed, err))
	}
	return err
}
