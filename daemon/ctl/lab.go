package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// LabSiteNames are the names of a lab's sites, in order; a lab of N sites
// uses the first N.
var LabSiteNames = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"}

// DefaultLabBasePort is the Raft port of configs/lab.
const DefaultLabBasePort = 7000

func newLabCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Write the configs of a process lab on loopback",
	}
	groupCommand(cmd)
	cmd.AddCommand(newLabInitCmd(e))
	return cmd
}

func newLabInitCmd(e *env) *cobra.Command {
	var (
		dir      string
		sites    int
		basePort int
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR [--sites N] [--base-port N]",
		Short: "Write one config per node of an N-site lab, and its PKI, into DIR",
		Long: `lab init writes the configs of a lab of N sites (alpha, bravo, charlie, ...)
with three nodes each, one hotlined process per node, into DIR/<node>.toml,
and a CA and node certificates into DIR/pki (kept if present). Node i of
site s listens on 127.0.s.i:N (Raft TCP and intra-site UDP), on
127.0.s.i:N+100 (path fiber) and 127.1.s.i:N+100 (path sat), N being the
base port; data
goes to DIR/data, sockets to DIR/run. configs/lab is "lab init --sites 2"
and configs/lab3 "lab init --sites 3 --base-port 7200": two labs whose
base ports are at least 101 apart run side by side. A config that exists
with other contents is refused (nothing is written); one with the same
contents is kept.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			switch {
			case dir == "":
				return usagef("lab init: --dir DIR is required")
			case sites < 2 || sites > len(LabSiteNames):
				return usagef("lab init: --sites %d: a lab has 2 to %d sites", sites, len(LabSiteNames))
			case basePort < 1 || basePort > 65535-100:
				return usagef("lab init: --base-port %d: must be 1 to %d (the paths listen on the base port + 100)", basePort, 65535-100)
			}
			files, err := LabConfigFiles(sites, basePort)
			if err != nil {
				return err
			}
			var write []string
			for _, f := range files {
				p := filepath.Join(dir, f.Name)
				old, err := os.ReadFile(p)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					write = append(write, f.Name)
				case err != nil:
					return fmt.Errorf("lab init: %w", err)
				case !bytes.Equal(old, f.Data):
					return fmt.Errorf("lab init: %s exists with other contents (another lab?); nothing written: choose another --dir or remove it", p)
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("lab init: %w", err)
			}
			for _, f := range files {
				if !containsString(write, f.Name) {
					continue
				}
				p := filepath.Join(dir, f.Name)
				if err := os.WriteFile(p, f.Data, 0o644); err != nil {
					return fmt.Errorf("lab init: %w", err)
				}
				if err := printWritten(e, p); err != nil {
					return err
				}
			}
			return labPKI(e, filepath.Join(dir, "pki"), sites)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "`DIR` to write the configs into (created if missing)")
	f.IntVar(&sites, "sites", 2, "number of `N` sites, three nodes each")
	f.IntVar(&basePort, "base-port", DefaultLabBasePort, "Raft port `N` of every node; the paths use N+100")
	return cmd
}

// labPKI creates the CA in dir unless it exists, and each lab node's
// certificate that is missing.
func labPKI(e *env, dir string, sites int) error {
	if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); errors.Is(err, fs.ErrNotExist) {
		if err := pki.Init(dir); err != nil {
			return err
		}
		if err := printWritten(e, filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile)); err != nil {
			return err
		}
	}
	for _, s := range LabSiteNames[:sites] {
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("%s-%d", s, i)
			if _, err := os.Stat(filepath.Join(dir, node+".crt")); err == nil {
				continue
			}
			certFile, keyFile, err := pki.Issue(dir, s, node)
			if err != nil {
				return fmt.Errorf("lab init: issue certificate for %s: %w", node, err)
			}
			if err := printWritten(e, certFile, keyFile); err != nil {
				return err
			}
		}
	}
	written, err := trust.EnsureSiteKeys(dir, LabSiteNames[:sites])
	if err != nil {
		return fmt.Errorf("lab init: site keys: %w", err)
	}
	return printWritten(e, written...)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// LabFile is one generated lab config.
type LabFile struct {
	Name string // <node>.toml
	Data []byte
}

// LabConfigFiles returns the config of every node of a lab of sites sites
// (2 to len(LabSiteNames)) whose nodes use Raft port basePort and path
// port basePort+100: the contents of configs/lab for (2, 7000).
func LabConfigFiles(sites, basePort int) ([]LabFile, error) {
	if sites < 2 || sites > len(LabSiteNames) {
		return nil, fmt.Errorf("lab: %d sites: a lab has 2 to %d", sites, len(LabSiteNames))
	}
	type labNode struct {
		Name, Raft, Fiber, Sat string
	}
	type labSite struct {
		Name  string
		Nodes []labNode
	}
	var all []labSite
	for s, name := range LabSiteNames[:sites] {
		ls := labSite{Name: name}
		for i := 1; i <= 3; i++ {
			ip := fmt.Sprintf("127.0.%d.%d", s+1, i)
			ls.Nodes = append(ls.Nodes, labNode{
				Name:  fmt.Sprintf("%s-%d", name, i),
				Raft:  fmt.Sprintf("%s:%d", ip, basePort),
				Fiber: fmt.Sprintf("%s:%d", ip, basePort+100),
				Sat:   fmt.Sprintf("127.1.%d.%d:%d", s+1, i, basePort+100),
			})
		}
		all = append(all, ls)
	}
	count := numberWords[3*sites]
	drills := "the other site's drills"
	if sites > 2 {
		drills = "other sites' drills"
	}
	var out []LabFile
	for _, s := range all {
		for _, n := range s.Nodes {
			var b bytes.Buffer
			err := labTemplate.Execute(&b, map[string]any{
				"Site": s.Name, "Node": n.Name, "Count": count, "Drills": drills, "Sites": all,
			})
			if err != nil {
				return nil, fmt.Errorf("lab: %w", err)
			}
			out = append(out, LabFile{Name: n.Name + ".toml", Data: b.Bytes()})
		}
	}
	return out, nil
}

var numberWords = map[int]string{6: "six", 9: "nine", 12: "twelve", 15: "fifteen", 18: "eighteen", 21: "twenty-one", 24: "twenty-four", 27: "twenty-seven"}

var labTemplate = template.Must(template.New("lab").Parse(strings.TrimLeft(`
# hotline lab node {{.Node}}: one of {{.Count}} processes on loopback (see README.md).
# Relative paths are relative to this file.
site = "{{.Site}}"
node = "{{.Node}}"
data_dir = "data/{{.Node}}"
socket = "run/{{.Node}}.sock"
# max_message_size = 1048576   # bytes
# submit_timeout = "10s"
# retention = "168h"
# log_level = "info"

# Inter-site network paths, in order of preference. Each node has its own
# address on each path (fiber on 127.0.x.y, sat on 127.1.x.y). Nodes of one
# site reach each other over their raft address (TCP for Raft, UDP for the
# intra-site link), independent of these paths.
paths = ["fiber", "sat"]

# Who may use the admin API (paths, path down/up, leader transfer, drill)
# besides root; and whether {{.Drills}} may move our leader.
# admin_group = "hotline-admin"
allow_remote_drills = true

[tls]
ca = "pki/ca.crt"
cert = "pki/{{.Node}}.crt"
key = "pki/{{.Node}}.key"

# The site's keys (made by hotlinectl pki keys): it signs what it sends
# and receives with sign_key, opens payloads sealed to it with kem_key, and
# trusts the public keys pinned in keys. A key file may be a systemd
# credential: "credential:NAME".
[trust]
sign_key = "pki/{{.Site}}.sign.key"
kem_key = "pki/{{.Site}}.kem.key"
keys = "pki/sites.pub"

[link]
# A path is declared down after probe_interval × probe_misses without an
# answered probe (500ms by default).
# probe_interval = "100ms"
# probe_misses = 5
# link_test_interval = "1m"
# handoff_after = "2s"

[raft]
heartbeat_timeout = "1s"
election_timeout = "1s"
leader_lease_timeout = "500ms"

# The deployment: every site and node, the same in all {{.Count}} files.
{{- range .Sites}}
[[sites]]
name = "{{.Name}}"
{{range .Nodes}}
[[sites.nodes]]
name = "{{.Name}}"
raft = "{{.Raft}}"
paths = { fiber = "{{.Fiber}}", sat = "{{.Sat}}" }
{{end}}
{{- end}}`, "\n")))
