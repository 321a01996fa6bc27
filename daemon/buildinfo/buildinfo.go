package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/hotline-link/hotline/queue"
)

// Release is the release this tree is (CHANGELOG.md): the version a
// build reports unless the link-time version or a module version says
// otherwise. It moves to the next number ("0.3.0") when that release's
// first change lands, so a build from the tree between releases reports
// the release it leads to, and its commit tells them apart.
const Release = "0.2.0"

// Set by -ldflags "-X github.com/hotline-link/hotline/daemon/buildinfo.version=... -X ...commit=...
// -X ...modified=true" (strings: -X sets nothing else).
var (
	version  string
	commit   string
	modified string
)

// Info describes a build. Empty fields are unknown.
type Info struct {
	Version   string  `json:"version"`               // "1.2.0": the link-time version, the module version, or Release
	Commit    string  `json:"commit,omitempty"`      // the git revision
	Modified  bool    `json:"modified,omitempty"`    // the checkout had uncommitted changes
	Time      string  `json:"commit_time,omitempty"` // the commit's time (RFC 3339), from VCS stamping
	GoVersion string  `json:"go"`                    // "go1.26.8"
	Platform  string  `json:"platform"`              // "linux/amd64"
	Speaks    *Speaks `json:"speaks,omitempty"`      // hotlined's: see Speaks
}

// Speaks is what the daemon speaks and reads: the protocols it offers,
// the newest first, and the formats of its stored data, to hold against
// the README's table of releases before an upgrade. The daemon fills it
// (daemon.BuildInfo): this package does not link the transports.
type Speaks struct {
	Link    []string      `json:"link"` // between sites: "hotline/1"
	Raft    []string      `json:"raft"` // within a site: "hotline-raft/2", "hotline-raft/1"
	Formats queue.Formats `json:"reads"`
}

// Read returns the running binary's build information.
func Read() Info {
	i := Info{Version: version, Commit: commit, Modified: modified == "true", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i.withDefaults()
	}
	if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		i.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if i.Commit == "" {
				i.Commit = s.Value
			}
		case "vcs.modified":
			i.Modified = i.Modified || s.Value == "true"
		case "vcs.time":
			i.Time = s.Value
		}
	}
	return i.withDefaults()
}

func (i Info) withDefaults() Info {
	if i.Version == "" {
		i.Version = Release
	}
	return i
}

// String is the one-line form: "1.2.0 (commit 0123abc, modified; go1.26.8 linux/amd64)".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	b.WriteString(" (")
	if i.Commit != "" {
		fmt.Fprintf(&b, "commit %s", i.Commit)
		if i.Modified {
			b.WriteString(", modified")
		}
		b.WriteString("; ")
	}
	fmt.Fprintf(&b, "%s %s)", i.GoVersion, i.Platform)
	return b.String()
}

// Text is the multi-line form that `PROGRAM --version` prints.
func (i Info) Text(program string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", program, i.Version)
	commit := i.Commit
	if commit == "" {
		commit = "unknown (built without VCS information)"
	} else if i.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(&b, "commit:  %s\n", commit)
	if i.Time != "" {
		fmt.Fprintf(&b, "time:    %s\n", i.Time)
	}
	fmt.Fprintf(&b, "go:      %s %s\n", i.GoVersion, i.Platform)
	if sp := i.Speaks; sp != nil {
		f := sp.Formats
		fmt.Fprintf(&b, "link:    %s (between sites)\n", strings.Join(sp.Link, ", "))
		fmt.Fprintf(&b, "raft:    %s (within a site)\n", strings.Join(sp.Raft, ", "))
		fmt.Fprintf(&b, "reads:   state file formats %d-%d, log entry formats %d-%d, backup format %d, site versions up to %d\n",
			f.StateFile[0], f.StateFile[1], f.LogEntry[0], f.LogEntry[1], f.Backup, f.SiteVersion)
	}
	return b.String()
}

// Template is Text(program) as a text/template (cobra's
// SetVersionTemplate) that prints it literally, whatever characters the
// link-time version holds.
func (i Info) Template(program string) string {
	return "{{" + strconv.Quote(i.Text(program)) + "}}"
}
