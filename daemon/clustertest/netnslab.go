package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/netlab"
)

// NetnsLab is the six-process lab with each node in its own network
// namespace built by netlab (LAN 10.(10+i).0.x:7000, paths on
// 10.(100+k).x.x:7100). It is a ProcLab (process table, Kill9,
// CheckAlive, Client, Leader; sockets at Dir/run/<node>.sock) whose nodes
// start inside their namespaces; Net cuts and restores paths.
type NetnsLab struct {
	*ProcLab
	Net *netlab.Lab
	// Paths are the lab's WAN paths, in preference order.
	Paths []string
}

// StartNetnsLab builds the namespaces (named after tag and this process),
// writes the six configs (short Raft timeouts, log level warn), starts
// every node in its namespace and waits until both sites have a leader
// whose link to the other site has every (node, path) up. It skips the
// test without root or with -short. When the test ends it stops every
// node with SIGTERM (any exit status but 0 fails the test), logs the tail
// of every node's output if the test failed, and removes the namespaces.
func StartNetnsLab(t testing.TB, tag string) *NetnsLab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("needs root for network namespaces: %v", err)
	}
	if testing.Short() {
		t.Skip("builds a namespace lab and starts six processes")
	}
	paths := []string{"fiber", "sat"}
	pl := newProcLab(t, Binaries(t))
	pl.exitChecked, pl.tail = true, 6000
	spec := netlab.Spec{Prefix: fmt.Sprintf("hn%s%d", tag, os.Getpid()%10000), Paths: paths}
	for _, s := range daemon.LabSites {
		spec.Sites = append(spec.Sites, netlab.Site{Name: s, Nodes: daemon.LabNodes(s)})
	}
	nl, err := netlab.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nl.Close(); err != nil {
			t.Error(err)
		}
	})
	l := &NetnsLab{ProcLab: pl, Net: nl, Paths: paths}
	pl.command = func(bin, node string) *exec.Cmd {
		return nl.Command(node, filepath.Join(bin, "hotlined"), "--config", filepath.Join(pl.Dir, node+".toml"))
	}
	if err := daemon.EnsureLabPKI(l.Dir); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigs(l.Dir, paths, func(s, i int) (string, map[string]string) {
		node := daemon.LabNodes(daemon.LabSites[s])[i]
		addrs := map[string]string{}
		for _, p := range paths {
			addrs[p] = nl.PathAddr(node, p) + ":7100"
		}
		return nl.LANAddr(node) + ":7000", addrs
	})
	for _, c := range cfgs {
		c.Socket = filepath.Join(l.Dir, "run", c.Node+".sock")
		ShortTimeouts(c)
		c.LogLevel = "warn"
		l.writeConfig(c)
	}
	t.Cleanup(pl.stopAll)
	for _, c := range cfgs {
		l.StartNode(c.Node)
	}
	for _, s := range daemon.LabSites {
		l.WaitLinks(s)
	}
	return l
}

// writeConfig writes c to Dir/<node>.toml and checks that LoadConfig
// reads back the same config (every exported field deeply equal; the
// unexported ones, such as the file's own path, are not compared).
func (l *NetnsLab) writeConfig(c *daemon.Config) {
	l.t.Helper()
	file := filepath.Join(l.Dir, c.Node+".toml")
	f, err := os.Create(file)
	if err != nil {
		l.t.Fatal(err)
	}
	err = toml.NewEncoder(f).Encode(c)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.t.Fatalf("write %s: %v", file, err)
	}
	back, err := daemon.LoadConfig(file)
	if err != nil {
		l.t.Fatalf("read back %s: %v", file, err)
	}
	bv, cv := reflect.ValueOf(back).Elem(), reflect.ValueOf(c).Elem()
	for i := range cv.NumField() {
		if f := cv.Type().Field(i); f.IsExported() && !reflect.DeepEqual(bv.Field(i).Interface(), cv.Field(i).Interface()) {
			l.t.Fatalf("%s reads back as\n%+v\nwant\n%+v", file, back, c)
		}
	}
}

// Status asks node for its status with a 2s deadline.
func (l *NetnsLab) Status(node string) (*client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return l.Client(node).Status(ctx)
}

// WaitLinks waits up to 60s until site has a leader that sees every
// (node, path) of every other site up, and returns the leader.
func (l *NetnsLab) WaitLinks(site string) string {
	l.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		leader := l.Leader(site)
		if st, err := l.Status(leader); err == nil && st.Role == "leader" && len(st.Links) > 0 &&
			!slices.ContainsFunc(st.Links, func(sl client.SiteLink) bool { return sl.PathsUp < sl.PathsTotal }) {
			return leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("site %s: no leader with every path to the other site up within 60s", site)
	return ""
}
