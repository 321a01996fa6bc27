// Package netlab builds a real multi-site network out of Linux network
// namespaces, veth pairs and bridges, for fault tests that run hotline
// nodes as separate processes. It is test support: it needs root and the
// `ip` and `bridge` tools; tests call Available and skip when it reports
// an error.
//
// Topology of New(Spec{Prefix: "hl1", Sites: …, Paths: {"fiber", "sat"}}):
//
//	namespace "hl1-<node>" per node    namespace "hl1-wan"
//	  lo (up)
//	  lan ───────────── veth ─────────── ls<i>n<j> ─┐ bridge bl<i> (site i's LAN)
//	  p0  ───────────── veth ─────────── p0s<i>n<j> ─┐ bridge bp0 (path 0, all sites)
//	  p1  ───────────── veth ─────────── p1s<i>n<j> ─┐ bridge bp1 (path 1, all sites)
//
// Addressing, for site i and node j (0-based, in Spec order) and path k
// (0-based, in Spec.Paths order):
//
//	LAN of site i:   10.(10+i).0.0/24,   node j at 10.(10+i).0.(j+1)
//	WAN path k:      10.(100+k).0.0/16,  site i node j at 10.(100+k).(i+1).(j+1)
//
// Each site's LAN is its own L2 segment; each path is one L2 segment shared
// by every node of every site (a flat WAN). There are no routes between
// segments and no default route, so a site's LAN is unreachable from other
// sites. MAC addresses are derived from the indices and every node holds
// permanent neighbour entries for all its peers, so no ARP is needed: a cut
// never turns into a failed neighbour (and a locally generated ICMP error),
// and a restored path carries packets at once. IPv6 is disabled on the lab's
// interfaces (lo keeps ::1) to keep the segments quiet.
//
// Faults: Cut sets the wan-side bridge port of a node's veth on one path to
// the bridge port state "disabled". Frames in both directions vanish; the
// node's own interface stays up with carrier, and no error or ICMP reaches
// it. Restore sets the port back to "forwarding" (STP is off and the
// forward delay 0, so it forwards immediately). CutLAN and RestoreLAN do
// the same to a node's LAN port. Process crashes are
// kill -9 of a process started with Lab.Command.
//
// Lifecycle: New removes namespaces left by an earlier run with the same
// Prefix (every namespace named "<Prefix>-…"), then builds; Close deletes
// every namespace. A namespace only goes away once no process and no socket
// uses it any more: kill node processes and close sockets opened in Do
// before, or soon after, Close. The veths and bridges die with the "wan"
// namespace regardless, so a surviving node process is cut off, not left
// connected.
package netlab
