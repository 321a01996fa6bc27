package upgradetest

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hotline-link/hotline/daemon/clustertest"
)

// Release is a previous release as PREVIOUS-RELEASE names it.
type Release struct {
	Version string // "0.1.0"
	Commit  string // 40 hex digits
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// parseRelease reads PREVIOUS-RELEASE's text: comment lines (#) and blank
// lines, then "version V" and "commit C", once each.
func parseRelease(text string) (Release, error) {
	var r Release
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		v = strings.TrimSpace(v)
		switch {
		case k == "version" && r.Version == "" && v != "":
			r.Version = v
		case k == "commit" && r.Commit == "" && commitRE.MatchString(v):
			r.Commit = v
		default:
			return Release{}, fmt.Errorf("line %d: %q: want \"version V\" and \"commit <40 hex digits>\", once each", n, line)
		}
	}
	if r.Version == "" || r.Commit == "" {
		return Release{}, errors.New("want a version line and a commit line")
	}
	return r, nil
}

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		text, err string
	}{
		{"# c\nversion 0.1.0\ncommit 493fdaed1bf937f605ef448d8f6409d22cdf0631\n", ""},
		{"version 0.1.0\n", "want a version line"},
		{"version 0.1.0\ncommit 493fdae\n", "line 2"},
		{"version 0.1.0\nversion 0.2.0\n", "line 2"},
		{"release 0.1.0\n", "line 1"},
	} {
		_, err := parseRelease(tc.text)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseRelease(%q) = %v, want error containing %q", tc.text, err, tc.err)
		}
	}
}

// The previous release's binaries are built once per test binary, into
// workDir (TestMain removes it).
var (
	prevOnce sync.Once
	prevBin  string
	prevRel  Release
	prevErr  error
	prevSkip string // why the tests cannot run here (not a git checkout)
)

// workDir holds what this test binary builds; TestMain makes and removes it.
var workDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "hotline-upgradetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// previousRelease builds hotlined and hotlinectl of the previous release
// (PREVIOUS-RELEASE at the module root) the first time a test asks, and
// returns the directory holding them and the release. It skips the test
// when the module root is not a git checkout, unless HOTLINE_UPGRADE_TEST=1
// (CI), and fails it when the commit is missing or the build fails.
func previousRelease(t *testing.T) (string, Release) {
	t.Helper()
	prevOnce.Do(func() { prevBin, prevRel, prevSkip, prevErr = buildPrevious(clustertest.ModuleRoot(t)) })
	if prevSkip != "" {
		if os.Getenv("HOTLINE_UPGRADE_TEST") == "1" {
			t.Fatalf("%s, and HOTLINE_UPGRADE_TEST=1 asks for the upgrade tests", prevSkip)
		}
		t.Skip(prevSkip)
	}
	if prevErr != nil {
		t.Fatal(prevErr)
	}
	return prevBin, prevRel
}

// buildPrevious extracts the release's tree from root's git repository
// (git archive) and builds it with its version stamped.
func buildPrevious(root string) (bin string, r Release, skip string, err error) {
	b, err := os.ReadFile(filepath.Join(root, "PREVIOUS-RELEASE"))
	if err != nil {
		return "", r, "", err
	}
	if r, err = parseRelease(string(b)); err != nil {
		return "", r, "", fmt.Errorf("PREVIOUS-RELEASE: %w", err)
	}
	git := func(args ...string) *exec.Cmd { return exec.Command("git", append([]string{"-C", root}, args...)...) }
	if out, err := git("rev-parse", "--git-dir").CombinedOutput(); err != nil {
		return "", r, fmt.Sprintf("%s is not a git checkout (%v: %s): the previous release cannot be built", root, err, strings.TrimSpace(string(out))), nil
	}
	if err := git("cat-file", "-e", r.Commit+"^{commit}").Run(); err != nil {
		if out, _ := git("rev-parse", "--is-shallow-repository").Output(); strings.TrimSpace(string(out)) == "true" {
			return "", r, "", fmt.Errorf("the previous release's commit %s is not in this shallow clone: run git fetch --unshallow", r.Commit)
		}
		return "", r, "", fmt.Errorf("the previous release's commit %s is not in %s's repository: fetch it (git fetch origin)", r.Commit, root)
	}
	src := filepath.Join(workDir, "src-"+r.Version)
	if err := extract(git("archive", "--format=tar", r.Commit), src); err != nil {
		return "", r, "", fmt.Errorf("git archive %s: %w", r.Commit, err)
	}
	defer os.RemoveAll(src)
	bin = filepath.Join(workDir, "bin-"+r.Version)
	// -trimpath: the tree's directory is new every run; without it no
	// compiled package could come from the build cache.
	build := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-X github.com/hotline-link/hotline/daemon/buildinfo.version="+r.Version+
			" -X github.com/hotline-link/hotline/daemon/buildinfo.commit="+r.Commit,
		"-o", bin+"/", "./cmd/hotlined", "./cmd/hotlinectl")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", r, "", fmt.Errorf("build release %s (%s): %v\n%s", r.Version, r.Commit, err, out)
	}
	return bin, r, "", nil
}

// extract runs cmd (git archive, a tar stream on stdout) and writes its
// directories, files and symlinks under dir.
func extract(cmd *exec.Cmd, dir string) error {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	err = untar(out, dir)
	io.Copy(io.Discard, out)
	if werr := cmd.Wait(); werr != nil {
		return fmt.Errorf("%v: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return err
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("archive entry %q leaves the tree", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			err = writeFile(p, tr, os.FileMode(h.Mode)&0o777)
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(h.Linkname, p)
			}
		default: // pax global header (the commit id) and the like
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestBuildPreviousOutsideGit: a tree that is not a git checkout (a
// source tarball) cannot build the previous release, and says so.
func TestBuildPreviousOutsideGit(t *testing.T) {
	root := t.TempDir()
	text := "version 0.1.0\ncommit 493fdaed1bf937f605ef448d8f6409d22cdf0631\n"
	if err := os.WriteFile(filepath.Join(root, "PREVIOUS-RELEASE"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, skip, err := buildPrevious(root)
	if err != nil || !strings.Contains(skip, "is not a git checkout") {
		t.Fatalf("buildPrevious outside git: skip %q, error %v; want a skip saying it is not a git checkout", skip, err)
	}
}

// TestPreviousReleaseBuilds checks the built release says its version.
func TestPreviousReleaseBuilds(t *testing.T) {
	skipLab(t)
	bin, r := previousRelease(t)
	out, err := exec.Command(filepath.Join(bin, "hotlined"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), r.Version) {
		t.Fatalf("hotlined --version of release %s: %v\n%s", r.Version, err, out)
	}
	t.Logf("previous release: %s", strings.TrimSpace(string(out)))
}

// skipLab skips what builds and starts processes with -short, and under
// the race detector: CI runs the suite a second time with -race, which
// would only run the same plain-built nodes again.
func skipLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the previous release and starts six processes")
	}
	if clustertest.Race {
		t.Skip("runs without -race only: its nodes are plain builds either way")
	}
}
