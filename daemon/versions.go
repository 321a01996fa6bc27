package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hotline-link/hotline/internal/alpn"
)

// Protocol versions: the link (transport.Protocols) and Raft
// (consensus.Protocols) each offer a list of versions and use the highest
// both ends speak. A handshake without a common version is refused by the
// accepting end (which logs both lists) and fails at the dialling end;
// both report it here (OnProtocolMismatch), and it is the
// protocol_version alarm until protocolAlarmFor passes without another.

// protocolAlarmFor is how long a version mismatch keeps the
// protocol_version alarm raised.
const protocolAlarmFor = 10 * time.Minute

// maxMismatches bounds the remotes remembered for the alarm: the accepting
// end learns of a mismatch before the certificate check, so a remote may
// be anyone that reaches the port.
const maxMismatches = 64

// alarmLogEvery bounds the ALARM lines of protocol_version: at most one
// this often, whatever the number of remotes (anyone who reaches a port can
// cause a mismatch), with the count of those not logged.
const alarmLogEvery = time.Minute

// versionMismatches keeps the latest version mismatch with each remote
// for the protocol_version alarm. Safe for concurrent use.
type versionMismatches struct {
	log    *slog.Logger
	recent *recentEvents[string] // by remote (its host and our list at the accepting end)

	mu         sync.Mutex
	lastLog    time.Time // the latest ALARM line; guarded by mu
	suppressed int       // alarms raised anew and not logged since; guarded by mu
}

func newVersionMismatches(log *slog.Logger) *versionMismatches {
	return &versionMismatches{log: log, recent: newRecentEvents[string](protocolAlarmFor, maxMismatches)}
}

// hook is transport.Config's and consensus.Config's OnProtocolMismatch.
func (v *versionMismatches) hook(remote string, offered, ours []string) {
	v.record(remote, offered, ours, time.Now())
}

// mismatchWords words a mismatch: ours is nil at the dialling end, where
// offered is what we offered and remote refused.
func mismatchWords(remote string, offered, ours []string) string {
	if ours == nil {
		return fmt.Sprintf("%s refused every version this node offers (%s); its log names the versions it speaks", remote, alpn.List(offered))
	}
	return fmt.Sprintf("%s offered %s; this node speaks %s", remote, alpn.List(offered), alpn.List(ours))
}

// record notes a mismatch with remote at now and logs an ALARM line when
// it raises the alarm anew (the first with remote after protocolAlarmFor
// without one).
func (v *versionMismatches) record(remote string, offered, ours []string, now time.Time) {
	words := mismatchWords(remote, offered, ours)
	key := remote
	if ours != nil {
		// The accepting end: a remote's every dial comes from another
		// port. One alarm per host and protocol (ours: the link's or
		// Raft's list).
		if host, _, err := net.SplitHostPort(remote); err == nil {
			key = host + " " + strings.Join(ours, ",")
		}
	}
	if !v.recent.record(key, words, now) {
		return
	}
	v.mu.Lock()
	if now.Sub(v.lastLog) < alarmLogEvery {
		v.suppressed++
		v.mu.Unlock()
		return
	}
	suppressed := v.suppressed
	v.lastLog, v.suppressed = now, 0
	v.mu.Unlock()
	if suppressed > 0 {
		v.log.Error(fmt.Sprintf("ALARM: protocol_version: %s (and %d more remotes since the last such line; status lists them)", words, suppressed))
	} else {
		v.log.Error("ALARM: protocol_version: " + words)
	}
}

// alarms words the mismatches of the last protocolAlarmFor, by remote.
func (v *versionMismatches) alarms(now time.Time) []string {
	if v == nil {
		return nil
	}
	var out []string
	v.recent.live(now, func(_ string, e recentEvent) {
		out = append(out, fmt.Sprintf("protocol_version: %s (%d times since %s, last at %s)",
			e.words, e.n, e.since.UTC().Format(time.RFC3339), e.at.UTC().Format(time.RFC3339)))
	})
	slices.Sort(out)
	return out
}
