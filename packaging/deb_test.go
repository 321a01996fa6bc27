package packaging

import (
	"bufio"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testVersion = "1.2.3~test"

// TestDeb builds the .deb with scripts/build-deb, installs it with dpkg
// into a fresh root (an empty dpkg database and an /etc/passwd with root
// only; the maintainer scripts run outside a chroot with DPKG_ROOT set,
// which they honour), and checks what it created.
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the .deb (go build, nfpm from the module proxy); skipped with -short")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "systemd-sysusers", "systemd-tmpfiles"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the .deb install test needs dpkg and systemd's sysusers and tmpfiles", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("installing into a fresh root sets owners: run as root")
	}
	deb := buildDeb(t)
	root := freshRoot(t)
	dpkgRoot(t, root, "-i", deb)

	status := dpkgRoot(t, root, "-s", "hotline")
	for _, want := range []string{"Status: install ok installed", "Version: " + testVersion, "Conffiles:\n /etc/hotline/hotline.toml "} {
		if !strings.Contains(status, want) {
			t.Errorf("dpkg -s hotline lacks %q:\n%s", want, status)
		}
	}

	users := readIDs(t, filepath.Join(root, "etc/passwd"))
	groups := readIDs(t, filepath.Join(root, "etc/group"))
	hotline, ok := users["hotline"]
	if !ok {
		t.Fatalf("no user hotline in the root's /etc/passwd")
	}
	if hotline.fields[5] != "/var/lib/hotline" || hotline.fields[6] != "/usr/sbin/nologin" || hotline.id >= 1000 {
		t.Errorf("user hotline = %q, want a system user with home /var/lib/hotline and no login", hotline.fields)
	}
	daemonGroup, clients := groups["hotline"], groups["hotline-clients"]
	if clients.fields == nil || daemonGroup.fields == nil {
		t.Fatalf("groups hotline and hotline-clients: %v, %v", daemonGroup.fields, clients.fields)
	}
	if hotline.fields[3] != strconv.Itoa(daemonGroup.id) {
		t.Errorf("user hotline's group is %s, want hotline (%d)", hotline.fields[3], daemonGroup.id)
	}
	if clients.fields[3] != "hotline" {
		t.Errorf("hotline-clients members %q, want the daemon's user only", clients.fields[3])
	}

	type want struct {
		path     string
		mode     fs.FileMode
		uid, gid int
	}
	root0 := 0
	for _, w := range []want{
		{"usr/bin/hotlined", 0o755, root0, root0},
		{"usr/bin/hotlinectl", 0o755, root0, root0},
		{"usr/lib/systemd/system/hotlined.service", 0o644, root0, root0},
		{"usr/lib/sysusers.d/hotline.conf", 0o644, root0, root0},
		{"usr/lib/tmpfiles.d/hotline.conf", 0o644, root0, root0},
		{"etc/hotline", fs.ModeDir | 0o750, root0, daemonGroup.id},
		{"etc/hotline/hotline.toml", 0o640, root0, daemonGroup.id},
		{"var/lib/hotline", fs.ModeDir | 0o700, hotline.id, daemonGroup.id},
		{"run/hotline", fs.ModeDir | fs.ModeSetgid | 0o750, hotline.id, clients.id},
		{"usr/share/bash-completion/completions/hotlinectl", 0o644, root0, root0},
		{"usr/share/zsh/vendor-completions/_hotlinectl", 0o644, root0, root0},
		{"usr/share/fish/vendor_completions.d/hotlinectl.fish", 0o644, root0, root0},
		{"usr/share/man/man1/hotlinectl.1.gz", 0o644, root0, root0},
		{"usr/share/man/man1/hotlinectl-send.1.gz", 0o644, root0, root0},
		{"usr/share/man/man1/hotlinectl-completion.1.gz", 0o644, root0, root0},
		{"usr/share/man/man8/hotlined.8.gz", 0o644, root0, root0},
		{"usr/share/man/man8/hotlined-check-config.8.gz", 0o644, root0, root0},
		{"usr/share/doc/hotline/README.md", 0o644, root0, root0},
		{"usr/share/doc/hotline/docs/DESIGN.md", 0o644, root0, root0},
		{"usr/share/doc/hotline/docs/THREAT-MODEL.md", 0o644, root0, root0},
	} {
		fi, err := os.Lstat(filepath.Join(root, w.path))
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetgid | fs.ModeSetuid)
		if mode != w.mode || int(st.Uid) != w.uid || int(st.Gid) != w.gid {
			t.Errorf("/%s: %v %d:%d, want %v %d:%d", w.path, mode, st.Uid, st.Gid, w.mode, w.uid, w.gid)
		}
	}

	for _, f := range []string{"usr/share/bash-completion/completions/hotlinectl", "usr/share/zsh/vendor-completions/_hotlinectl", "usr/share/fish/vendor_completions.d/hotlinectl.fish"} {
		if b, _ := os.ReadFile(filepath.Join(root, f)); !strings.Contains(string(b), "__complete") {
			t.Errorf("/%s is not a completion script for hotlinectl", f)
		}
	}
	for _, f := range []string{"usr/share/man/man1/hotlinectl-send.1.gz", "usr/share/man/man8/hotlined.8.gz"} {
		if page := gunzip(t, filepath.Join(root, f)); !strings.Contains(page, ".TH ") || !strings.Contains(page, "hotline "+testVersion) {
			t.Errorf("/%s is not a man page of this version:\n%.300s", f, page)
		}
	}
	checkDocumentation(t, root)

	// The binaries run and say what they are.
	commit := ""
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	for _, bin := range []string{"hotlined", "hotlinectl"} {
		out, err := exec.Command(filepath.Join(root, "usr/bin", bin), "--version").CombinedOutput()
		if err != nil {
			t.Errorf("%s --version: %v\n%s", bin, err, out)
			continue
		}
		for _, w := range []string{bin + " " + testVersion + "\n", "commit:  " + commit, "go:      " + runtime.Version()} {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s --version printed %q, want %q in it", bin, out, w)
			}
		}
	}
	// The conffile is a valid config but for the certificates and the
	// site keys (credentials of the unit), which the operator provides.
	cmd := exec.Command(filepath.Join(root, "usr/bin/hotlined"), "check-config", filepath.Join(root, "etc/hotline/hotline.toml"))
	cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "hotline.toml:") || !strings.Contains(string(out), "tls.ca: pki: load CA: open /etc/hotline/pki/ca.crt") ||
		!strings.Contains(string(out), `trust.sign_key: key file "credential:alpha.sign.key" is a systemd credential`) || !strings.Contains(string(out), "2 problem(s)") {
		t.Errorf("check-config of the installed config: %v\n%s\nwant exit status 1 for the missing CA and keys only", err, out)
	}

	// Removing keeps the config and the data.
	dpkgRoot(t, root, "-r", "hotline")
	for path, kept := range map[string]bool{"usr/bin/hotlined": false, "usr/lib/systemd/system/hotlined.service": false, "etc/hotline/hotline.toml": true, "var/lib/hotline": true} {
		if _, err := os.Lstat(filepath.Join(root, path)); (err == nil) != kept {
			t.Errorf("after dpkg -r: /%s exists = %v, want %v", path, err == nil, kept)
		}
	}
}

// buildDeb runs scripts/build-deb into a temporary directory.
func buildDeb(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("../scripts/build-deb", out)
	cmd.Env = append(os.Environ(), "VERSION="+testVersion)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/build-deb: %v\n%s", err, stderr.String())
	}
	deb := strings.TrimSpace(string(stdout))
	if want := "hotline_" + testVersion + "_" + runtime.GOARCH + ".deb"; filepath.Base(deb) != want {
		t.Fatalf("scripts/build-deb printed %q, want .../%s", deb, want)
	}
	t.Logf("built %s in %v", filepath.Base(deb), time.Since(start).Round(100*time.Millisecond))
	return deb
}

// freshRoot is an empty system for dpkg --root: a dpkg database and the
// root user.
func freshRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, body := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
	} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkgRoot runs dpkg on root. The root has no shell, so the maintainer
// scripts run on the host with DPKG_ROOT=root; systemd is not installed in
// it, hence --force-depends.
func dpkgRoot(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %q: %v\n%s", args, err, out)
	}
	return string(out)
}

type idEntry struct {
	id     int
	fields []string
}

// readIDs parses an /etc/passwd or /etc/group file by name.
func readIDs(t *testing.T, file string) map[string]idEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]idEntry{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		id, _ := strconv.Atoi(fields[2])
		m[fields[0]] = idEntry{id, fields}
	}
	return m
}

func gunzip(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return string(b)
}

// checkDocumentation checks that every file:// and man: reference of the
// installed unit's Documentation= is installed.
func checkDocumentation(t *testing.T, root string) {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/hotlined.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^Documentation=(.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("the unit has no Documentation=")
	}
	man := regexp.MustCompile(`^man:([a-z-]+)\(([1-8])\)$`)
	for _, ref := range strings.Fields(string(m[1])) {
		var path string
		switch {
		case strings.HasPrefix(ref, "file://"):
			path = strings.TrimPrefix(ref, "file://")
		case man.MatchString(ref):
			p := man.FindStringSubmatch(ref)
			path = "/usr/share/man/man" + p[2] + "/" + p[1] + "." + p[2] + ".gz"
		default:
			t.Errorf("Documentation=%s: not a file or a man page", ref)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, path)); err != nil {
			t.Errorf("Documentation=%s is not installed: %v", ref, err)
		}
	}
}
