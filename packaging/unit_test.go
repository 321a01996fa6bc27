package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const unitFile = "../configs/systemd/hotlined.service"

// maxExposure is the highest `systemd-analyze security` score the unit may
// have (0 = fully locked down, 10 = unprotected; "OK" starts at 1.0 ...).
const maxExposure = 1.0

// exposure runs `systemd-analyze security --offline=yes unit` and returns
// the overall exposure level it prints.
func exposure(t *testing.T, unit string) float64 {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes %s: %v\n%s", unit, err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Overall exposure level\" line in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return score
}

// TestUnitExposure scores the unit as shipped (loopback only) and as an
// operator runs it, with the site's peers allowed in a drop-in.
func TestUnitExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed; the unit's exposure score is not checked")
	}
	if s := exposure(t, unitFile); s > maxExposure {
		t.Errorf("systemd-analyze security scores %s %.1f, want at most %.1f", unitFile, s, maxExposure)
	} else {
		t.Logf("%s: exposure %.1f", unitFile, s)
	}
	// --offline reads no drop-ins: fold the README's IPAddressAllow drop-in
	// into a copy.
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	withPeers := strings.Replace(string(unit), "\nIPAddressAllow=localhost\n", "\nIPAddressAllow=localhost\nIPAddressAllow=192.0.2.12 192.0.2.13 203.0.113.21\n", 1)
	if withPeers == string(unit) {
		t.Fatal("the unit has no IPAddressAllow=localhost line")
	}
	copyFile := filepath.Join(t.TempDir(), "hotlined.service")
	if err := os.WriteFile(copyFile, []byte(withPeers), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := exposure(t, copyFile); s > maxExposure {
		t.Errorf("with the peers allowed the unit scores %.1f, want at most %.1f", s, maxExposure)
	}
}

// TestUnitFitsTheDaemon checks the settings the daemon depends on, which
// a score does not show.
func TestUnitFitsTheDaemon(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, line := range []string{
		"Type=notify",  // sd_notify READY
		"WatchdogSec=", // and the watchdog pings
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", // socket + notify; Raft TCP, link UDP
		"ReadWritePaths=/run/hotline",                      // the socket's directory, from tmpfiles.d
		"StateDirectory=hotline",                           // data_dir
		"ExecStart=/usr/bin/hotlined --config /etc/hotline/hotline.toml",
		"User=hotline",
		"UMask=0077",
		"IPAddressDeny=any",
		"IPAddressAllow=localhost",
		"SystemCallFilter=~@privileged @resources",
		"SystemCallErrorNumber=EPERM",
		"PrivateUsers=yes",
		"ProtectProc=invisible",
		"ProcSubset=pid",
		"DevicePolicy=closed",
		"RemoveIPC=yes",
	} {
		if !strings.Contains(unit, "\n"+line) {
			t.Errorf("the unit lacks %q", line)
		}
	}
	// RuntimeDirectory= would recreate /run/hotline as hotline:hotline and
	// lock the clients out of the socket.
	if strings.Contains(unit, "\nRuntimeDirectory=") {
		t.Errorf("the unit sets RuntimeDirectory=; /run/hotline must come from tmpfiles.d")
	}
	tmpfiles, err := os.ReadFile("tmpfiles.d/hotline.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tmpfiles), "\nd /run/hotline 2750 hotline hotline-clients -") {
		t.Errorf("tmpfiles.d/hotline.conf does not make /run/hotline 2750 hotline:hotline-clients")
	}
}
