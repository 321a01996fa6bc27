package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabConfigsLoad boots nothing but checks that every config in
// configs/lab loads and validates, and resolves paths next to the file.
func TestLabConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../configs/lab/*.toml")
	if err != nil || len(files) != 6 {
		t.Fatalf("want 6 lab configs, have %v (%v)", files, err)
	}
	for _, f := range files {
		c, err := LoadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		node := strings.TrimSuffix(filepath.Base(f), ".toml")
		if c.Node != node {
			t.Errorf("%s: node = %q", f, c.Node)
		}
		dir, _ := filepath.Abs(filepath.Dir(f))
		if want := filepath.Join(dir, "run", node+".sock"); c.Socket != want {
			t.Errorf("%s: socket %q, want %q", f, c.Socket, want)
		}
		if want := filepath.Join(dir, "pki", node+".crt"); c.TLS.Cert != want {
			t.Errorf("%s: cert %q, want %q", f, c.TLS.Cert, want)
		}
	}
}

const goodConfig = `
site = "alpha"
node = "alpha-1"
data_dir = "data"
socket = "s.sock"
paths = ["fiber"]
[tls]
ca = "ca.crt"
cert = "n.crt"
key = "n.key"
[trust]                      # LoadConfig names the files; Open and check-config read them
sign_key = "alpha.sign.key"
kem_key = "credential:alpha.kem.key"
keys = "sites.pub"
[[sites]]
name = "alpha"
[[sites.nodes]]
name = "alpha-1"
raft = "127.0.0.1:7000"
paths = { fiber = "127.0.0.1:7100" }
[[sites]]
name = "bravo"
[[sites.nodes]]
name = "bravo-1"
paths = { fiber = "127.0.0.2:7100" }
`

// TestExampleConfigLoads checks the appliance example next to the unit.
func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig("../configs/systemd/hotline.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != "/run/hotline/hotline.sock" || c.SocketGroup != "" {
		t.Fatalf("socket %q group %q", c.Socket, c.SocketGroup)
	}
	if c.Trust.SignKey != "credential:alpha.sign.key" || c.Trust.KEMKey != "credential:alpha.kem.key" || c.Trust.Keys != "/etc/hotline/sites.pub" {
		t.Fatalf("trust %+v, want the keys as the unit's credentials", c.Trust)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, edit, want string
	}{
		{"good", "", ""},
		{"unknown top key", "colour = \"red\"\n", `:1: unknown key "colour"`},
		{"unknown nested key", "[raft]\nheartbeat = \"1s\"\n", `unknown key "raft.heartbeat"`},
		{"bad duration", "submit_timeout = \"soon\"\n", `invalid duration "soon"`},
		{"short timeout", "submit_timeout = \"1ms\"\n", "submit_timeout: 1ms is too short"},
		{"bad raft order", "[raft]\nheartbeat_timeout = \"2s\"\n", "raft: timeouts must satisfy"},
		{"bad max size", "max_message_size = 0\n", "max_message_size: 0 is out of range"},
		{"bad log level", "log_level = \"loud\"\n", `log_level: "loud" is not debug`},
		{"bad mode", "socket_mode = \"rw\"\n", `socket_mode: "rw" is not an octal`},
		{"bad window", "[link]\nwindow = 0\n", "link.window: 0 is out of range"},
		{"short snapshot interval", "[raft]\nsnapshot_interval = \"10ms\"\n", "raft.snapshot_interval: 10ms is out of range"},
		{"syntax", "site = \n", "toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := filepath.Join(dir, "n.toml")
			// Edits go before the tables so that top-level keys stay top-level.
			body := tt.edit + goodConfig
			if strings.HasPrefix(tt.edit, "[") {
				body = goodConfig + tt.edit
			}
			if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(f)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), f) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, f, tt.want)
			}
		})
	}
}

func TestValidateDeployment(t *testing.T) {
	base := func() *Config {
		c := LabConfigs("/lab", []string{"fiber"}, func(s, i int) (string, map[string]string) {
			ip := "127.0." + string(rune('1'+s)) + "." + string(rune('1'+i))
			return ip + ":7000", map[string]string{"fiber": ip + ":7100"}
		})[0]
		return c
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"unknown own node", func(c *Config) { c.Node = "alpha-9" }, `node "alpha-9" is not listed under site "alpha"`},
		{"node of other site", func(c *Config) { c.Node = "bravo-1" }, `node "bravo-1" is not listed under site "alpha"`},
		{"missing path address", func(c *Config) { c.Paths = []string{"fiber", "sat"} }, `has no address for path "sat"`},
		{"duplicate node", func(c *Config) { c.Sites[1].Nodes[0].Name = "alpha-1" }, `node "alpha-1" is defined twice`},
		{"one site", func(c *Config) { c.Sites = c.Sites[:1] }, "at least two [[sites]]"},
		{"bad addr", func(c *Config) { c.Sites[0].Nodes[1].Raft = "localhost" }, `"localhost" is not host:port`},
		{"shared addr", func(c *Config) { c.Sites[1].Nodes[0].Paths = map[string]string{"fiber": "127.0.1.1:7100"} }, "is also used by"},
		{"bad name", func(c *Config) { c.Site = "Alpha!" }, "site:"},
		{"every node joins", func(c *Config) {
			for i := range c.Sites[0].Nodes {
				c.Sites[0].Nodes[i].Join = true
			}
		}, `every node of site "alpha" has join = true`},
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			c.Sites = append([]SiteConfig(nil), c.Sites...)
			for i := range c.Sites {
				c.Sites[i].Nodes = append([]NodeConfig(nil), c.Sites[i].Nodes...)
			}
			tt.edit(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestTrustConfig: [trust] paths resolve next to the file except
// credentials, and each key is required, named with its line.
func TestTrustConfig(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "n.toml")
	if err := os.WriteFile(f, []byte(goodConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Trust.SignKey != filepath.Join(dir, "alpha.sign.key") || c.Trust.KEMKey != "credential:alpha.kem.key" || c.Trust.Keys != filepath.Join(dir, "sites.pub") {
		t.Errorf("trust %+v: want relative paths resolved, credentials kept", c.Trust)
	}
	for key, line := range map[string]string{"sign_key": "sign_key = \"alpha.sign.key\"\n", "kem_key": "kem_key = \"credential:alpha.kem.key\"\n", "keys": "keys = \"sites.pub\"\n"} {
		if err := os.WriteFile(f, []byte(strings.Replace(goodConfig, line, "", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		// The key is missing: its line is the [trust] table's, line 11.
		if _, err := LoadConfig(f); err == nil || !strings.Contains(err.Error(), f+":11: trust."+key+": is required") {
			t.Errorf("without %s: %v", key, err)
		}
	}
}
