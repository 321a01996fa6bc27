package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
)

func TestLineOfKey(t *testing.T) {
	doc := `site = "alpha"           # 1
node = "alpha-1"
link.window = 3
[tls]
cert = "n.crt"            # 5
[raft]
[[sites]]
name = "alpha"
[[sites.nodes]]
name = "alpha-1"          # 10
raft = "127.0.0.1:7000"
paths = { fiber = "127.0.0.1:7100" }
[[sites]]
name = "bravo"
[[sites.nodes]]           # 15
name = "bravo-1"
[[sites.nodes]]
"name" = "bravo-2"
 paths = { fiber = "127.0.0.3:7100" }
`
	tests := []struct {
		key  string
		line int
	}{
		{"site", 1},
		{"node", 2},
		{"link.window", 3},
		{"tls.cert", 5},
		{"tls.key", 4}, // not written: the [tls] table
		{"raft", 6},    // the table itself
		{"sites", 7},   // the first [[sites]]
		{"sites[0].nodes[0].name", 10},
		{"sites[0].nodes[0].raft", 11},
		{"sites[0].nodes[0].paths.fiber", 12},
		{"sites[1]", 13},
		{"sites[1].name", 14},
		{"sites[1].nodes[0]", 15},
		{"sites[1].nodes[1].name", 18},
		{"sites[1].nodes[1].paths.fiber", 19},
		{"sites[1].nodes[0].raft", 15}, // not written: its table
		{"admin_group", 0},
	}
	for _, tt := range tests {
		if got := lineOfKey([]byte(doc), tt.key); got != tt.line {
			t.Errorf("lineOfKey(%q) = %d, want %d", tt.key, got, tt.line)
		}
	}
}

// checkConfigPKI makes a CA and the certificates of alpha-1 and bravo-1 in
// a temporary directory.
func checkConfigPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range [][2]string{{"alpha", "alpha-1"}, {"bravo", "bravo-1"}} {
		if _, _, err := pki.Issue(dir, n[0], n[1]); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const checkConfigTemplate = `site = "alpha"
node = "alpha-1"
data_dir = "data"
socket = "run/alpha-1.sock"
paths = ["fiber"]
%s
[tls]
ca = "ca.crt"
cert = "%s.crt"
key = "%s.key"

[link]
window = %d

[[sites]]
name = "alpha"
[[sites.nodes]]
name = "alpha-1"
raft = "127.0.0.1:7000"
paths = { fiber = "127.0.0.1:7100" }
[[sites.nodes]]
name = "alpha-2"
raft = "192.0.2.12:7000"
paths = { fiber = "192.0.2.12:7100" }
[[sites]]
name = "bravo"
[[sites.nodes]]
name = "bravo-1"
paths = { fiber = "127.0.0.2:7100" }
[[sites.nodes]]
name = "bravo-2"
paths = { fiber = "bravo-2.example:7100" }
`

func TestCheckConfig(t *testing.T) {
	dir := checkConfigPKI(t)
	tests := []struct {
		name        string
		top         string
		cert, key   string
		window      int
		wantOut     []string
		wantProblem []string // "LINE: rest", the file is prefixed
	}{
		{name: "good", cert: "alpha-1", key: "alpha-1", window: 4, wantOut: []string{
			"OK ", "node         alpha/alpha-1", "alpha-1.crt: valid until", "sites        alpha (2 nodes, this site), bravo (2 nodes)",
			"admin API    root only", "IPAddressAllow=127.0.0.2 192.0.2.12\n", "(and the addresses of bravo-2.example, which are names)",
		}},
		{name: "another node's certificate", cert: "bravo-1", key: "bravo-1", window: 4,
			wantProblem: []string{"9: tls.cert: " + filepath.Join(dir, "bravo-1.crt") + " is the certificate of bravo/bravo-1, but this node is alpha/alpha-1"}},
		{name: "key of another node", cert: "alpha-1", key: "bravo-1", window: 4,
			wantProblem: []string{"9: tls.cert: pki: load: private key " + filepath.Join(dir, "bravo-1.key") + " does not match"}},
		{name: "missing key", cert: "alpha-1", key: "nope", window: 4,
			wantProblem: []string{"10: tls.key: pki: load key: open " + filepath.Join(dir, "nope.key")}},
		{name: "bad value", cert: "alpha-1", key: "alpha-1", window: 0,
			wantProblem: []string{"13: link.window: 0 is out of range"}},
		{name: "unknown socket group", top: `socket_group = "no-such-group-h11"`, cert: "bravo-1", key: "bravo-1", window: 4,
			wantProblem: []string{`6: socket_group: group "no-such-group-h11"`, "9: tls.cert: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "node.toml")
			body := fmt.Sprintf(checkConfigTemplate, tt.top, tt.cert, tt.key, tt.window)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errb strings.Builder
			err := Main(context.Background(), []string{"check-config", file}, &out, &errb)
			if tt.wantProblem == nil {
				if err != nil {
					t.Fatalf("check-config: %v\n%s", err, errb.String())
				}
				for _, w := range tt.wantOut {
					if !strings.Contains(out.String(), w) {
						t.Errorf("output lacks %q:\n%s", w, out.String())
					}
				}
				return
			}
			if err == nil || IsUsageError(err) {
				t.Fatalf("check-config = %v, want a failure (exit status 1); output:\n%s", err, out.String())
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%d problem", len(tt.wantProblem))) {
				t.Errorf("error %q, want it to count %d problems", err, len(tt.wantProblem))
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if len(lines) != len(tt.wantProblem) {
				t.Fatalf("problems:\n%s\nwant %d", errb.String(), len(tt.wantProblem))
			}
			for i, w := range tt.wantProblem {
				if !strings.HasPrefix(lines[i], file+":"+w) {
					t.Errorf("problem %q, want it to start with %q", lines[i], file+":"+w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("a failed check printed %q", out.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("check-config created data_dir")
			}
		})
	}
}

func TestCheckConfigWarnsBeforeExpiry(t *testing.T) {
	dir := checkConfigPKI(t)
	file := filepath.Join(dir, "node.toml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(checkConfigTemplate, "", "alpha-1", "alpha-1", 4)), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := pki.Load(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "alpha-1.crt"), filepath.Join(dir, "alpha-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	soon := b.Leaf.NotAfter.Add(-10 * 24 * time.Hour)
	if err := CheckConfig(file, soon, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "warning: the certificate "+filepath.Join(dir, "alpha-1.crt")+" expires in 10 days") {
		t.Errorf("no expiry warning 10 days before:\n%s", out.String())
	}
}

func TestCheckConfigUsage(t *testing.T) {
	for _, args := range [][]string{{"check-config"}, {"check-config", "a", "b"}, {"chek-config", "a"}} {
		var out, errb strings.Builder
		err := Main(context.Background(), args, &out, &errb)
		if !IsUsageError(err) {
			t.Errorf("Main(%q) = %v, want a usage error", args, err)
		}
	}
	var out, errb strings.Builder
	err := Main(context.Background(), []string{"chek-config", "a"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `did you mean "check-config"?`) {
		t.Errorf("mistyped subcommand: %v, want a suggestion", err)
	}
	if err := Main(context.Background(), []string{"--version"}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "hotlined ") || !strings.Contains(out.String(), "go:") {
		t.Errorf("--version = %v, %q", err, out.String())
	}
}
