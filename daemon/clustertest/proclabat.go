package clustertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// StartProcLabAt is StartProcLab on the configs and PKI that "hotlinectl
// lab init --base-port basePort" writes (configs/lab is base port 7000),
// so that labs of parallel tests do not collide; edit, when not nil,
// rewrites each node's config (its TOML text) before the nodes start.
func StartProcLabAt(t testing.TB, basePort int, edit func(node, config string) string) *ProcLab {
	t.Helper()
	return StartProcLabFrom(t, Binaries(t), basePort, edit)
}

// StartProcLabFrom is StartProcLabAt with the binaries of directory bin
// (hotlined and hotlinectl of another build, such as a previous release)
// instead of Binaries: lab init, the PKI, every node and Ctl use them, and
// Bin is bin. StartNodeFrom starts a node on another build later.
func StartProcLabFrom(t testing.TB, bin string, basePort int, edit func(node, config string) string) *ProcLab {
	t.Helper()
	l := newProcLab(t, bin)
	l.command = func(bin, node string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, "hotlined"), "--config", node+".toml")
	}
	l.Ctl("lab", "init", "--dir", ".", "--base-port", strconv.Itoa(basePort))
	for _, n := range allNodes() {
		if edit == nil {
			break
		}
		p := filepath.Join(l.Dir, n+".toml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(edit(n, string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(l.stopAll)
	for _, n := range allNodes() {
		l.StartNode(n)
	}
	return l
}
