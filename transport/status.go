package transport

import "time"

// PathStatus is the health of one (peer node, path) as this node sees it
// from its outgoing connection.
type PathStatus struct {
	Site, Node, Path string
	// Remote is the peer's UDP address on this path.
	Remote string
	// Connected: an outgoing QUIC connection is up.
	Connected bool
	// RTT is QUIC's smoothed round-trip time of the current connection,
	// or of the last one; 0 before any.
	RTT time.Duration
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

// Paths reports every (peer node, path) pair, peers in config order, paths
// in preference order.
func (l *Link) Paths() []PathStatus {
	var out []PathStatus
	for _, pr := range l.order {
		for _, pp := range pr.paths {
			out = append(out, pp.status())
		}
	}
	return out
}

func (pp *peerPath) status() PathStatus {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	st := PathStatus{
		Site:      pp.peer.Site,
		Node:      pp.peer.Node,
		Path:      pp.ep.name,
		Remote:    pp.addr.String(),
		RTT:       pp.stats.rtt,
		LastOK:    pp.stats.lastOK,
		LastErrAt: pp.stats.lastErrAt,
		LastErr:   pp.stats.lastErr,
		BytesSent: pp.stats.bytesSent,
		BytesRecv: pp.stats.bytesRecv,
		Sent:      pp.stats.sent,
		Failed:    pp.stats.failed,
	}
	if c := pp.conn; c != nil {
		cs := c.ConnectionStats()
		st.Connected = c.Context().Err() == nil
		st.BytesSent += cs.BytesSent
		st.BytesRecv += cs.BytesReceived
		if cs.SmoothedRTT > 0 {
			st.RTT = cs.SmoothedRTT
		}
	}
	return st
}
