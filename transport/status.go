package transport

import "time"

// PathStatus is the health of one (peer node, path) as this node sees it
// from its outgoing connection.
type PathStatus struct {
	Site, Node, Path string
	// Remote is the peer's UDP address on this path.
	Remote string
	// State is PathUp, PathDown, PathConnecting or PathAdminDown; Since
	// is when it last changed (zero while connecting for the first time).
	State string
	Since time.Time
	// Connected: an outgoing QUIC connection is up.
	Connected bool
	// Protocol is the link protocol version (ALPN, e.g. "hotline/1")
	// negotiated on the current outgoing connection; "" without one.
	Protocol string
	// Active: this (node, path) carried the last batch acknowledged by
	// the peer's site.
	Active bool
	// RTT is the smoothed probe round trip, or QUIC's smoothed RTT before
	// any probe was answered; 0 before any.
	RTT time.Duration
	// LossPct is the share of packets QUIC declared lost on the current
	// connection over the last 50 probe intervals, in percent. ProbesLost
	// counts probes not answered within the detection time.
	LossPct    float64
	ProbesLost uint64
	// LastOK is when a request last got a reply; LastErrAt and LastErr
	// when and why something last failed.
	LastOK, LastErrAt time.Time
	LastErr           string
	// BytesSent and BytesRecv count QUIC payload bytes over all outgoing
	// connections on this path, retransmissions included.
	BytesSent, BytesRecv uint64
	// Sent counts requests that got a reply. Failed counts failed dials
	// and requests sent that got no reply (stream or connection errors,
	// protocol violations, callers giving up). Requests that skipped the
	// path during redial backoff count in neither.
	Sent, Failed uint64
}

// Path states in PathStatus.State.
const (
	PathUp         = "up"         // connected and answering probes
	PathDown       = "down"       // failed; the prober is redialling
	PathConnecting = "connecting" // not connected yet, never failed
	PathAdminDown  = "admin-down" // disabled on this node (SetPathAdmin)
)

// Paths reports every (peer node, path) pair, peers in config order, paths
// in preference order.
func (l *Link) Paths() []PathStatus {
	l.mu.Lock()
	active := make(map[*peerPath]bool, len(l.lastAcked))
	for _, pp := range l.lastAcked {
		active[pp] = true
	}
	l.mu.Unlock()
	var out []PathStatus
	for _, pr := range l.order {
		for _, pp := range pr.paths {
			st := pp.status()
			st.Active = active[pp]
			out = append(out, st)
		}
	}
	return out
}

// Active returns the node and path that carried the last batch site
// acknowledged; "" before any.
func (l *Link) Active(site string) (node, path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pp := l.lastAcked[site]; pp != nil {
		return pp.peer.Node, pp.ep.name
	}
	return "", ""
}

// stateLocked is the path's PathStatus.State.
func (pp *peerPath) stateLocked() string {
	switch {
	case AdminMode(pp.ep.admin.Load()) != AdminUp:
		return PathAdminDown
	case pp.conn != nil && pp.conn.Context().Err() == nil && !pp.down:
		return PathUp
	case pp.down || pp.everUp || !pp.stats.lastErrAt.IsZero():
		return PathDown
	}
	return PathConnecting
}

func (pp *peerPath) status() PathStatus {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	st := PathStatus{
		State:      pp.stateLocked(),
		Since:      pp.since,
		LossPct:    pp.probe.lossPct(),
		ProbesLost: pp.probe.lost,
		Site:       pp.peer.Site,
		Node:       pp.peer.Node,
		Path:       pp.ep.name,
		Remote:     pp.addr.String(),
		RTT:        pp.stats.rtt,
		LastOK:     pp.stats.lastOK,
		LastErrAt:  pp.stats.lastErrAt,
		LastErr:    pp.stats.lastErr,
		BytesSent:  pp.stats.bytesSent,
		BytesRecv:  pp.stats.bytesRecv,
		Sent:       pp.stats.sent,
		Failed:     pp.stats.failed,
	}
	if c := pp.conn; c != nil {
		cs := c.ConnectionStats()
		st.Connected = c.Context().Err() == nil
		st.Protocol = c.ConnectionState().TLS.NegotiatedProtocol
		st.BytesSent += cs.BytesSent
		st.BytesRecv += cs.BytesReceived
		if cs.SmoothedRTT > 0 {
			st.RTT = cs.SmoothedRTT
		}
	}
	if pp.probe.srtt > 0 {
		st.RTT = pp.probe.srtt
	}
	return st
}
