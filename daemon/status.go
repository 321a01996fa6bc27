package daemon

import (
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/buildinfo"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// Version is the daemon's version (package buildinfo).
func Version() string { return buildinfo.Read().Version }

// BuildInfo is the daemon's build with what it speaks and reads: what
// `hotlined --version` prints.
func BuildInfo() buildinfo.Info {
	i := buildinfo.Read()
	i.Speaks = &buildinfo.Speaks{Link: transport.Protocols(), Raft: consensus.Protocols(), Formats: queue.ReadFormats()}
	return i
}

// Status reports what this node knows now.
func (n *Node) Status() *client.Status {
	leader, _ := n.raft.Leader()
	st := n.raft.Stats()
	s := &client.Status{
		Site: n.cfg.Site, Node: n.cfg.Node, PID: os.Getpid(), Version: Version(),
		SiteVersion: n.store.SiteVersion(), SiteVersionWait: n.siteVersionWait(), // siteversion.go
		Role: n.raft.State(), Leader: leader, Term: st.Term, AppliedIndex: n.store.AppliedIndex(),
		InboxUnread: n.store.InboxUnread(), Uptime: time.Since(n.start).Round(time.Second).String(),
		Mailboxes: n.mailboxStatus(), // mailbox.go
	}
	type linkState struct {
		connected bool
		protocol  string
		rtt       time.Duration
		lastOK    time.Time
		lastErr   string
		lastErrAt time.Time
	}
	links := map[string]*linkState{}
	for _, p := range n.link.Paths() {
		ls := links[p.Node]
		if ls == nil {
			ls = &linkState{}
			links[p.Node] = ls
		}
		if p.Connected {
			ls.connected = true
			if ls.protocol == "" {
				ls.protocol = p.Protocol
			}
			if ls.rtt == 0 || (p.RTT > 0 && p.RTT < ls.rtt) {
				ls.rtt = p.RTT
			}
		}
		if p.LastOK.After(ls.lastOK) {
			ls.lastOK = p.LastOK
		}
		if p.LastErrAt.After(ls.lastErrAt) {
			ls.lastErrAt, ls.lastErr = p.LastErrAt, p.LastErr
		}
	}
	for _, site := range n.cfg.Sites {
		for _, nc := range site.Nodes {
			if nc.Name == n.cfg.Node {
				continue
			}
			p := client.Peer{Site: site.Name, Node: nc.Name, Role: "remote"}
			if site.Name == n.cfg.Site {
				p.Role = "voter"
				if v, _, ok := n.raft.PeerProtocol(nc.Raft); ok {
					p.RaftProtocol = "hotline-raft/" + strconv.Itoa(v)
				}
			}
			if ls := links[nc.Name]; ls != nil {
				p.Connected = ls.connected
				p.Protocol = ls.protocol
				p.RTTMillis = float64(ls.rtt.Microseconds()) / 1000
				if !ls.lastOK.IsZero() {
					t := ls.lastOK.UTC()
					p.LastOK = &t
				}
				if ls.lastErrAt.After(ls.lastOK) {
					p.LastError = ls.lastErr
				}
			}
			s.Peers = append(s.Peers, p)
		}
	}
	now := time.Now()
	s.Outbound = []client.OutQueue{}
	for _, c := range n.store.Outbound() {
		q := client.OutQueue{To: c.Dest, Precedence: c.Precedence.String(), Last: c.Last, Acked: c.Acked, Queued: c.Last - c.Acked}
		if c.OldestQueuedAt > 0 && q.Queued > 0 {
			q.OldestAgeMillis = now.Sub(time.Unix(0, c.OldestQueuedAt)).Milliseconds()
		}
		s.Outbound = append(s.Outbound, q)
	}
	s.Inbound = []client.InQueue{}
	for _, c := range n.store.Inbound() {
		s.Inbound = append(s.Inbound, client.InQueue{From: c.Origin, Precedence: c.Precedence.String(), Last: c.Last})
	}
	for _, site := range n.cfg.remoteSites() {
		sl := client.SiteLink{Site: site, Mailboxes: n.remote.names(site)} // mailbox_exchange.go
		sl.ActiveNode, sl.ActivePath = n.link.Active(site)
		for _, p := range n.link.Paths() {
			if p.Site == site {
				sl.PathsTotal++
				if p.State == transport.PathUp {
					sl.PathsUp++
				}
			}
		}
		s.Links = append(s.Links, sl)
	}
	s.Alarms = n.health.alarms()
	s.Overdue = n.overdue.list() // objectives.go
	for _, q := range n.store.ReceiptQueues() {
		s.ReceiptsPending += int(q.Last - q.Acked)
	}
	return s
}

func (a *apiServer) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.nodeStatus())
}
