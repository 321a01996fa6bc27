package daemon

// What the external tests (package daemon_test, whose labs come from
// daemon/clustertest) need of the daemon's internals, the way net/http
// exports to its own tests: small accessors, nothing the daemon uses.

import (
	"context"
	"log/slog"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// Internal constants and variables.
const (
	CallPropose          = callPropose
	CallDrillTransfer    = callDrillTransfer
	MetricsMaxConns      = metricsMaxConns
	MetricsHeaderTimeout = metricsHeaderTimeout
)

var (
	RaftStates      = raftStates
	LabSiteNameList = labSiteNames
	StartPprof      = startPprof
	Watchdog        = watchdog
)

// HealthReport is the JSON body of /healthz and /readyz.
type HealthReport = healthReport

// SocketLimits are the socket API's limits.
type SocketLimits = socketLimits

// APILimits returns the limits a new socket API takes.
func APILimits() SocketLimits { return apiLimits }

// SetAPILimits changes the limits new socket APIs take until the test ends.
func SetAPILimits(t testing.TB, f func(*SocketLimits)) {
	old := apiLimits
	f(&apiLimits)
	t.Cleanup(func() { apiLimits = old })
}

// The parts of a running node.

func StoreOf(n *Node) *queue.Store                   { return n.store }
func RaftOf(n *Node) *consensus.Node                 { return n.raft }
func LinkOf(n *Node) *transport.Link                 { return n.link }
func ConfigOf(n *Node) *Config                       { return n.cfg }
func KeysOf(n *Node) *pki.Keyring                    { return n.keys }
func MetricsAddr(n *Node) string                     { return n.mserv.Addr().String() }
func Alarms(n *Node) []string                        { return n.health.alarms() }
func Health(n *Node) error                           { return n.health.healthy() }
func StorageFull(n *Node) error                      { return n.health.storageFull() }
func Waiters(n *Node) int                            { return len(n.api.waiters) }
func ReadBarrier(n *Node, ctx context.Context) error { return n.readBarrier(ctx) }

// Gather scrapes n's metrics registry.
func Gather(n *Node) ([]*dto.MetricFamily, error) { return n.metrics.reg.Gather() }

// ProposeRYW proposes cmd through n as the API does.
func ProposeRYW(n *Node, ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	return n.proposeRYW(ctx, cmd)
}

// NodeConfigOf returns the config of node name in c's sites.
func NodeConfigOf(c *Config, name string) *NodeConfig { return c.nodeConfig(name) }

// Reloader is a node's config reloader.
type Reloader struct{ r *reloader }

func NewReloader(n *Node, file string, level *slog.LevelVar) Reloader {
	return Reloader{newReloader(n.cfg, n.keys, n.log, file, level)}
}
func (r Reloader) Reload() (string, error)           { return r.r.reload() }
func (r Reloader) Apply(cfg *Config) (string, error) { return r.r.apply(cfg) }

// The commit path and the calls a node serves.

var (
	NoopCommand = noopCommand
	Retryable   = retryable
)

// Relay sends an encoded command from n to node as a follower relays it.
func Relay(n *Node, ctx context.Context, node string, data []byte) error {
	_, err := n.commit.relay(ctx, node, data)
	return err
}

// Propose commits cmd through n as the leader's duties do.
func Propose(n *Node, ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	return n.propose(ctx, cmd)
}

// CallErr is the error a reply to a call of op stands for.
func CallErr(op string, rep *transport.Reply) error { return callCodes.Err(op, rep) }

// SetStopping moves n's lifecycle to stopping, or back to running.
func SetStopping(n *Node, stopping bool) {
	if stopping {
		n.life.set(stateStopping)
	} else {
		n.life.set(stateRunning)
	}
}

// OfferRaftProtocols makes the node of c speak only protocols within its
// site (a node that speaks hotline-raft/1 only is one of 0.1.0 to its
// peers); nil restores this build's.
func OfferRaftProtocols(c *Config, protocols []string) { c.raftOffer = protocols }
