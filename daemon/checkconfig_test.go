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
	"github.com/hotline-link/hotline/transport/trust"
)

func TestLineOfKey(t *testing.T) {
	doc := `site = "alpha"           # 1
node = "alpha-1"
link.window = 3
[tls]
cert = "n.crt"            # 5
[raft]
[trust]
old_kem_keys = ["k1",   # 8
  "k2"]
[[sites]]
name = "alpha"
[[sites.nodes]]
name = "alpha-1"          # 13
raft = "127.0.0.1:7000"
paths = { fiber = "127.0.0.1:7100" }
[[sites]]
name = "bravo"
[[sites.nodes]]           # 18
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
		{"trust.old_kem_keys", 8},
		{"trust.old_kem_keys[1]", 8}, // an element: the key's line
		{"trust.sign_key", 7},        // not written: the [trust] table
		{"sites", 10},                // the first [[sites]]
		{"sites[0].nodes[0].name", 13},
		{"sites[0].nodes[0].raft", 14},
		{"sites[0].nodes[0].paths.fiber", 15},
		{"sites[1]", 16},
		{"sites[1].name", 17},
		{"sites[1].nodes[0]", 18},
		{"sites[1].nodes[1].name", 21},
		{"sites[1].nodes[1].paths.fiber", 22},
		{"sites[1].nodes[0].raft", 18}, // not written: its table
		{"admin_group", 0},
	}
	for _, tt := range tests {
		if got := lineOfKey([]byte(doc), tt.key); got != tt.line {
			t.Errorf("lineOfKey(%q) = %d, want %d", tt.key, got, tt.line)
		}
	}
}

// checkConfigPKI makes a CA and the certificates of alpha-1 and bravo-1 in
// a temporary directory, and the site keys of alpha and bravo with their
// keyring, sites.pub.
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
	if _, err := trust.EnsureSiteKeys(dir, []string{"alpha", "bravo"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkConfigTrust is the [trust] section of checkConfigTemplate's good
// config, the keys of checkConfigPKI.
const checkConfigTrust = `sign_key = "alpha.sign.key"
kem_key = "alpha.kem.key"
keys = "sites.pub"
`

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

[trust]
%s
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
	keys := checkConfigKeys(t, dir)
	tests := []struct {
		name        string
		top         string
		cert, key   string
		window      int
		trust       string // the [trust] section; "" for checkConfigTrust
		credentials string // $CREDENTIALS_DIRECTORY, if set
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
		{name: "good, with an old kem key", cert: "alpha-1", key: "alpha-1", window: 4,
			trust: checkConfigTrust + `old_kem_keys = ["old/alpha.kem.key"]` + "\n", wantOut: []string{
				"sign key     " + keys["alpha sign"] + " (" + filepath.Join(dir, "alpha.sign.key") + ")",
				"kem key      " + keys["alpha kem"] + " (" + filepath.Join(dir, "alpha.kem.key") + ")",
				"old kem keys " + keys["old kem"] + " (" + filepath.Join(dir, "old", "alpha.kem.key") + ")",
				"keyring      " + filepath.Join(dir, "sites.pub") + ", pinning:",
				"  alpha      sign " + keys["alpha sign"] + ", kem " + keys["alpha kem"] + "\n",
				"  bravo      sign " + keys["bravo sign"] + ", kem " + keys["bravo kem"] + "\n",
			}},
		{name: "keys as credentials", cert: "alpha-1", key: "alpha-1", window: 4, credentials: dir,
			trust:   "sign_key = \"credential:alpha.sign.key\"\nkem_key = \"credential:alpha.kem.key\"\nkeys = \"sites.pub\"\n",
			wantOut: []string{"sign key     " + keys["alpha sign"] + " (credential:alpha.sign.key)"}},
		{name: "credential outside the unit", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       "sign_key = \"credential:alpha.sign.key\"\nkem_key = \"alpha.kem.key\"\nkeys = \"sites.pub\"\n",
			wantProblem: []string{`16: trust.sign_key: key file "credential:alpha.sign.key" is a systemd credential, but $CREDENTIALS_DIRECTORY is not set: load it with LoadCredential=alpha.sign.key:/path in the unit, or name a path; to check the files outside the unit, run check-config with CREDENTIALS_DIRECTORY`}},
		{name: "missing key file", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "alpha.sign.key", "nope.sign.key", 1),
			wantProblem: []string{"16: trust.sign_key: stat " + filepath.Join(dir, "nope.sign.key") + ": no such file"}},
		{name: "key of another site", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "alpha.sign.key", "bravo.sign.key", 1),
			wantProblem: []string{"16: trust.sign_key: " + filepath.Join(dir, "bravo.sign.key") + " is a key of site bravo, but this node is in alpha"}},
		{name: "old kem key of another site", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       checkConfigTrust + "old_kem_keys = [\"old/alpha.kem.key\",\n  \"bravo.kem.key\"]\n",
			wantProblem: []string{"19: trust.old_kem_keys[1]: " + filepath.Join(dir, "bravo.kem.key") + " is a key of site bravo"}},
		{name: "key file mode 0644", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "alpha.kem.key", "loose/alpha.kem.key", 1),
			wantProblem: []string{"17: trust.kem_key: " + filepath.Join(dir, "loose", "alpha.kem.key") + " is mode 0644: a private key must be readable by its owner only (chmod 600 "}},
		{name: "keyring not pinning our key", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "sites.pub", "old/sites.pub", 1),
			wantProblem: []string{"18: trust.keys: " + filepath.Join(dir, "old", "sites.pub") + " does not pin this site's signing key " + keys["alpha sign"]}},
		{name: "keyring lacking a configured site", cert: "alpha-1", key: "alpha-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "sites.pub", "alpha.pub", 1),
			wantProblem: []string{"18: trust.keys: " + filepath.Join(dir, "alpha.pub") + " pins no signing key of site bravo"}},
		{name: "TLS and trust problems together", cert: "bravo-1", key: "bravo-1", window: 4,
			trust:       strings.Replace(checkConfigTrust, "alpha.kem.key", "bravo.kem.key", 1),
			wantProblem: []string{"9: tls.cert: ", "17: trust.kem_key: "}},
		{name: "unknown socket group", top: `socket_group = "no-such-group-h11"`, cert: "bravo-1", key: "bravo-1", window: 4,
			wantProblem: []string{`6: socket_group: group "no-such-group-h11"`, "9: tls.cert: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "node.toml")
			if tt.trust == "" {
				tt.trust = checkConfigTrust
			}
			if tt.credentials != "" {
				t.Setenv("CREDENTIALS_DIRECTORY", tt.credentials)
			}
			body := fmt.Sprintf(checkConfigTemplate, tt.top, tt.cert, tt.key, tt.window, tt.trust)
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

// checkConfigKeys adds to checkConfigPKI's directory another key set of
// alpha in old/ (with its keyring of alpha and bravo) and a copy of
// alpha's KEM key of mode 0644 in loose/, and returns the key ids by
// "SITE sign|kem" and "old kem".
func checkConfigKeys(t *testing.T, dir string) map[string]string {
	t.Helper()
	old := filepath.Join(dir, "old")
	if _, err := trust.CreateSiteKeys(old, "alpha"); err != nil {
		t.Fatal(err)
	}
	bravo, err := os.ReadFile(filepath.Join(dir, "bravo.pub"))
	if err != nil {
		t.Fatal(err)
	}
	alphaOld, err := os.ReadFile(filepath.Join(old, "alpha.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "sites.pub"), append(alphaOld, bravo...), 0o644); err != nil {
		t.Fatal(err)
	}
	kem, err := os.ReadFile(filepath.Join(dir, "alpha.kem.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "loose"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "loose", "alpha.kem.key"), kem, 0o644); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, s := range []string{"alpha", "bravo"} {
		sk, err := trust.LoadSigningKey(filepath.Join(dir, trust.SigningKeyFile(s)))
		if err != nil {
			t.Fatal(err)
		}
		dk, err := trust.LoadDecryptionKey(filepath.Join(dir, trust.DecryptionKeyFile(s)))
		if err != nil {
			t.Fatal(err)
		}
		ids[s+" sign"], ids[s+" kem"] = sk.ID().String(), dk.ID().String()
	}
	dk, err := trust.LoadDecryptionKey(filepath.Join(old, "alpha.kem.key"))
	if err != nil {
		t.Fatal(err)
	}
	ids["old kem"] = dk.ID().String()
	return ids
}

func TestCheckConfigWarnsBeforeExpiry(t *testing.T) {
	dir := checkConfigPKI(t)
	file := filepath.Join(dir, "node.toml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(checkConfigTemplate, "", "alpha-1", "alpha-1", 4, checkConfigTrust)), 0o600); err != nil {
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
