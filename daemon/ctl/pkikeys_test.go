package ctl

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/transport/trust"
)

// TestPKIKeys creates a site's keys: the files and modes, the key ids
// printed, the keys load; a second run refuses and changes nothing.
func TestPKIKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, _, err := run(t, "", "pki", "keys", "--dir", dir, "--site", "alpha")
	if err != nil {
		t.Fatalf("pki keys: %v", err)
	}
	for name, mode := range map[string]os.FileMode{"alpha.sign.key": 0o600, "alpha.kem.key": 0o600, "alpha.pub": 0o644} {
		p := filepath.Join(dir, name)
		checkMode(t, p, mode)
		if !strings.Contains(out, "wrote "+p+"\n") {
			t.Errorf("pki keys output %q does not report %s", out, p)
		}
	}
	sk, err := trust.LoadSigningKey(filepath.Join(dir, "alpha.sign.key"))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := trust.LoadDecryptionKey(filepath.Join(dir, "alpha.kem.key"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "key ids of alpha: sign " + sk.ID().String() + ", kem " + dk.ID().String(); !strings.Contains(out, want) {
		t.Errorf("pki keys output %q lacks %q", out, want)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "alpha.sign.key"))

	_, _, _, err = run(t, "", "pki", "keys", "--dir", dir, "--site", "alpha")
	if err == nil || !strings.Contains(err.Error(), "already exists") || errors.Is(err, ErrUsage) {
		t.Fatalf("second pki keys: %v, want a refusal (not a usage error)", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "alpha.sign.key")); string(after) != string(before) {
		t.Fatal("a refused pki keys changed the signing key")
	}

	wantUsageError(t, "", []string{"pki", "keys", "--site", "alpha"}, "pki keys: --dir DIR is required")
	wantUsageError(t, "", []string{"pki", "keys", "--dir", dir}, "pki keys: --site SITE is required")
	wantUsageError(t, "", []string{"pki", "keys", "--dir", dir, "--site", "Alpha!"}, "pki keys: --site:")
	wantUsageError(t, "", []string{"pki", "keys", "--dir", dir, "--site", "alpha", "extra"}, "takes no arguments")
}

// siteKeysIn makes keys of sites in their own directories (as each site
// does on its own) and returns the directories.
func siteKeysIn(t *testing.T, sites ...string) map[string]string {
	t.Helper()
	dirs := map[string]string{}
	for _, s := range sites {
		dirs[s] = filepath.Join(t.TempDir(), s)
		if _, err := trust.CreateSiteKeys(dirs[s], s); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

func pubOf(dirs map[string]string, site string) string {
	return filepath.Join(dirs[site], trust.PublicKeysFile(site))
}

// TestPKIKeyring builds a keyring from two sites' .pub files, then the
// keyring of a rotation (old KEM key retired, both signing keys), and
// checks what it pins and prints.
func TestPKIKeyring(t *testing.T) {
	dirs := siteKeysIn(t, "alpha", "bravo")
	ring := filepath.Join(t.TempDir(), "sites.pub")
	out, _, _, err := run(t, "", "pki", "keyring", "--out", ring, pubOf(dirs, "alpha"), pubOf(dirs, "bravo"))
	if err != nil {
		t.Fatalf("pki keyring: %v", err)
	}
	checkMode(t, ring, 0o644)
	k, err := trust.LoadKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"alpha", "bravo"} {
		sk, _ := trust.LoadSigningKey(filepath.Join(dirs[s], trust.SigningKeyFile(s)))
		dk, _ := trust.LoadDecryptionKey(filepath.Join(dirs[s], trust.DecryptionKeyFile(s)))
		if _, err := k.VerifyKey(s, sk.ID()); err != nil {
			t.Errorf("keyring: %v", err)
		}
		if e, err := k.EncryptionKey(s); err != nil || e.ID != dk.ID() {
			t.Errorf("keyring: current kem key of %s: %v, %v", s, e, err)
		}
		for _, w := range []string{s + "  sign  " + sk.ID().String() + "  verifies", s + "  kem   " + dk.ID().String() + "  current"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}
	if !strings.HasPrefix(out, "wrote "+ring+"\n") {
		t.Errorf("output %q does not start with the file written", out)
	}

	// Rotation: alpha's new keys; the old kem key retired by --retire,
	// the old keyring as an input (its alpha lines are the old ones).
	newDir := filepath.Join(t.TempDir(), "alpha-2")
	if _, err := trust.CreateSiteKeys(newDir, "alpha"); err != nil {
		t.Fatal(err)
	}
	newPub := filepath.Join(newDir, "alpha.pub")
	oldKEM, _ := trust.LoadDecryptionKey(filepath.Join(dirs["alpha"], "alpha.kem.key"))
	newKEM, _ := trust.LoadDecryptionKey(filepath.Join(newDir, "alpha.kem.key"))
	out, _, _, err = run(t, "", "pki", "keyring", "--out", ring, "--retire", pubOf(dirs, "alpha"), ring, newPub)
	if err != nil {
		t.Fatalf("pki keyring (rotation): %v", err)
	}
	k, err = trust.LoadKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(k.SigningKeys("alpha")); n != 2 {
		t.Errorf("rotation keyring pins %d signing keys of alpha, want 2", n)
	}
	if e, err := k.EncryptionKey("alpha"); err != nil || e.ID != newKEM.ID() {
		t.Errorf("rotation keyring: current kem key of alpha %v, %v; want the new %s", e, err, newKEM.ID())
	}
	if !strings.Contains(out, "alpha  kem   "+oldKEM.ID().String()+"  retired") {
		t.Errorf("rotation output does not show the old kem key retired:\n%s", out)
	}
	text, _ := os.ReadFile(ring)
	if n := strings.Count(string(text), "\nbravo "); n != 2 {
		t.Errorf("bravo's lines appear %d times, want 2 (each once):\n%s", n, text)
	}
	// Building it again from its own output changes nothing.
	if _, _, _, err := run(t, "", "pki", "keyring", "--out", ring, ring); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(ring); string(again) != string(text) {
		t.Errorf("rebuilding the keyring from itself changed it")
	}
	if tmps, _ := filepath.Glob(ring + ".*.tmp"); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

// TestPKIKeyringRefuses: malformed lines are named by file and line,
// conflicts by both places, and the output file is left as it was.
func TestPKIKeyringRefuses(t *testing.T) {
	dirs := siteKeysIn(t, "alpha", "bravo")
	tmp := t.TempDir()
	ring := filepath.Join(tmp, "sites.pub")
	if err := os.WriteFile(ring, []byte("previous\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alphaPub, _ := os.ReadFile(pubOf(dirs, "alpha"))
	lines := strings.Split(strings.TrimSpace(string(alphaPub)), "\n")
	write := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// bravo's file claiming alpha's signing key under bravo's name (the id
	// recomputed would differ, so the line is refused as it stands).
	f := strings.Fields(lines[0])
	stolen := write("stolen.pub", "bravo sign "+f[2]+" "+f[3]+"\n")
	badB64 := write("bad.pub", "# alpha\n"+lines[0]+"\nalpha kem 01020304 ***\n")
	onlyKEM := write("kem-only.pub", lines[1]+"\n")
	newDirs := siteKeysIn(t, "alpha")
	newAlpha := pubOf(newDirs, "alpha")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed line", []string{badB64}, badB64 + ": trust: malformed: line 3: key is not base64"},
		{"key id of another site", []string{pubOf(dirs, "alpha"), stolen}, stolen + ": trust: malformed: line 1: key id " + f[2] + " does not match"},
		{"missing file", []string{filepath.Join(tmp, "none.pub")}, "no such file"},
		{"two current kem keys", []string{pubOf(dirs, "alpha"), newAlpha}, "site alpha has two current kem keys"},
		{"no signing key", []string{onlyKEM, pubOf(dirs, "bravo")}, "no signing key of site alpha"},
		{"every kem key retired", []string{"--retire", pubOf(dirs, "alpha"), pubOf(dirs, "bravo")}, "site alpha has no current kem key"},
	}
	for _, tt := range tests {
		_, _, _, err := run(t, "", append([]string{"pki", "keyring", "--out", ring}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, ErrUsage) {
			t.Errorf("%s: %v, want a refusal containing %q", tt.name, err, tt.want)
		}
		if b, _ := os.ReadFile(ring); string(b) != "previous\n" {
			t.Fatalf("%s: the refused keyring replaced %s", tt.name, ring)
		}
	}

	// The same key under two site names, each line with its right id (a
	// key id binds its site): refused, naming both places.
	kf := strings.Fields(lines[1])
	raw, err := base64.StdEncoding.DecodeString(kf[3])
	if err != nil {
		t.Fatal(err)
	}
	asBravo, err := trust.ParseEncryptionKey("bravo", raw)
	if err != nil {
		t.Fatal(err)
	}
	bravoPub, _ := os.ReadFile(pubOf(dirs, "bravo"))
	bravoSign := strings.Split(string(bravoPub), "\n")[0]
	shared := write("shared.pub", bravoSign+"\nbravo kem "+asBravo.ID.String()+" "+kf[3]+"\n")
	_, _, _, err = run(t, "", "pki", "keyring", "--out", ring, pubOf(dirs, "alpha"), shared)
	if err == nil || !strings.Contains(err.Error(), "a key belongs to one site") || !strings.Contains(err.Error(), pubOf(dirs, "alpha")+" line 2") {
		t.Errorf("one key under two sites: %v", err)
	}

	wantUsageError(t, "", []string{"pki", "keyring", pubOf(dirs, "alpha")}, "--out FILE is required")
	wantUsageError(t, "", []string{"pki", "keyring", "--out", ring}, "give the public keys files")
}
