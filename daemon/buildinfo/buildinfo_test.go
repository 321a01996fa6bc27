package buildinfo

import (
	"runtime"
	"strings"
	"testing"
	"text/template"

	"github.com/hotline-link/hotline/queue"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Version == "" || i.GoVersion != runtime.Version() || i.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("Read() = %+v", i)
	}
	if i.Speaks != nil {
		t.Errorf("Read().Speaks = %+v: the daemon fills it", i.Speaks)
	}
}

func TestText(t *testing.T) {
	i := Info{Version: "1.2.0", Commit: "0123abc", Modified: true, Time: "2026-11-28T23:00:00Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "hotlinectl 1.2.0\ncommit:  0123abc (modified)\ntime:    2026-11-28T23:00:00Z\ngo:      go1.26.8 linux/amd64\n"
	if got := i.Text("hotlinectl"); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got, want := i.String(), "1.2.0 (commit 0123abc, modified; go1.26.8 linux/amd64)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	i.Speaks = &Speaks{Link: []string{"hotline/2", "hotline/1"}, Raft: []string{"hotline-raft/2"}, Formats: queue.Formats{StateFile: [2]int{1, 9}, LogEntry: [2]int{1, 7}, Backup: 1, SiteVersion: 3}}
	want += "link:    hotline/2, hotline/1 (between sites)\nraft:    hotline-raft/2 (within a site)\n" +
		"reads:   state file formats 1-9, log entry formats 1-7, backup format 1, site versions up to 3\n"
	if got := i.Text("hotlinectl"); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	bare := Info{Version: "dev", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	if got := bare.Text("hotlined"); !strings.Contains(got, "commit:  unknown") || strings.Contains(got, "time:") {
		t.Errorf("Text without VCS information = %q", got)
	}
}

// TestTemplatePrintsLiterally: whatever a link-time version holds, the
// cobra version template prints it as it is.
func TestTemplatePrintsLiterally(t *testing.T) {
	i := Info{Version: `1.0 {{.Name}} "q" \n`, GoVersion: "go1.26.8", Platform: "linux/amd64"}
	tmpl, err := template.New("v").Parse(i.Template("hotlined"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, struct{ Name string }{"X"}); err != nil {
		t.Fatal(err)
	}
	if b.String() != i.Text("hotlined") {
		t.Errorf("template printed %q, want %q", b.String(), i.Text("hotlined"))
	}
}
