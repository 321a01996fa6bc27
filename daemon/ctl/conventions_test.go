package ctl

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestVersion(t *testing.T) {
	out, _, _, err := run(t, "", "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "hotlinectl ") || !strings.Contains(out, "go:      "+runtime.Version()) || !strings.Contains(out, "commit:  ") {
		t.Fatalf("version printed %q, want name, commit and Go version", out)
	}
	flag, _, _, err := run(t, "", "--version")
	if err != nil || flag != out {
		t.Fatalf("--version = %q, %v; want the same as version: %q", flag, err, out)
	}
	js, _, _, err := run(t, "", "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(js), &v); err != nil || v.Version == "" || v.Go != runtime.Version() {
		t.Fatalf("version --json = %q (%v), want version and go", js, err)
	}
	wantUsageError(t, "", []string{"version", "extra"}, "takes no arguments")
}

func TestDidYouMean(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, `unknown command "stauts" for "hotlinectl"; did you mean "status"?`},
		{[]string{"recieve"}, `unknown command "recieve" for "hotlinectl" (see`}, // too far from anything
		{[]string{"pki", "isue"}, `did you mean "issue"?`},
		{[]string{"leader", "tranfser"}, `did you mean "transfer"?`},
		{[]string{"complet"}, `did you mean "completion"?`},
	}
	for _, tt := range tests {
		wantUsageError(t, "", tt.args, tt.want)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, _, _, err := run(t, "", "completion", sh)
		if err != nil || !strings.Contains(out, "hotlinectl __complete") && !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: %v, output %.80q; want a script calling __complete", sh, err, out)
		}
	}
	wantUsageError(t, "", []string{"completion"}, "needs one shell: bash, zsh, fish")
	wantUsageError(t, "", []string{"completion", "tcsh"}, `shell "tcsh" is not one of bash, zsh, fish`)
}

// TestCompletionRequests asks what a shell asks (`hotlinectl __complete
// ARGS... PARTIAL`) and checks the candidates and cobra's directive (the
// last line, ":N").
func TestCompletionRequests(t *testing.T) {
	tests := []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"st"}, []string{"status"}, ":4"},
		{[]string{"send", "--precedence", ""}, []string{"flash", "immediate", "priority", "routine"}, ":4"},
		{[]string{"send", "--wait", ""}, []string{"queued", "delivered", "read"}, ":4"},
		{[]string{"path", "down", "fiber", "--mode", ""}, []string{"close", "drop"}, ":4"},
		{[]string{"drill", "--scenario", "cut"}, []string{"cut-active-path", "cut-all-but-one"}, ":4"},
		{[]string{"pki", "init", "--dir", ""}, nil, ":16"}, // directories
		{[]string{"status", "--socket", ""}, nil, ":0"},    // file names
		{[]string{"send", "--to", ""}, nil, ":4"},          // a site: nothing to offer, not files
		{[]string{"completion", ""}, []string{"bash", "zsh", "fish"}, ":4"},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		err := Run(context.Background(), append([]string{cobra.ShellCompNoDescRequestCmd}, tt.args...), nil, &stdout, &stderr)
		out := stdout.String()
		if err != nil {
			t.Fatalf("__complete %q: %v", tt.args, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		got, directive := lines[:len(lines)-1], lines[len(lines)-1]
		for _, w := range tt.want {
			if !contains(got, w) {
				t.Errorf("__complete %q = %q, want %q among them", tt.args, got, w)
			}
		}
		if tt.want == nil && len(got) != 0 {
			t.Errorf("__complete %q = %q, want no candidates", tt.args, got)
		}
		if directive != tt.directive {
			t.Errorf("__complete %q directive %s, want %s", tt.args, directive, tt.directive)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// placeholders are the words flags and usage lines use for values: the
// same word for the same kind of value everywhere.
var placeholders = map[string]bool{
	"FILE": true, "DIR": true, "NODE": true, "SITE": true, "DUR": true, "N": true, "BYTES": true,
	// a choice among fixed values (completed by completion.go), or a name
	"LEVEL": true, "STATE": true, "MODE": true, "SCENARIO": true, "KEY": true, "MAILBOX": true, "TYPE": true,
	// a host:port; the two nodes of `member replace OLD NEW`
	"ADDR": true, "OLD": true, "NEW": true,
}

// TestFlagPlaceholders walks every command: each flag that takes a value
// names it with a backquoted placeholder from the list, durations say DUR,
// and the Use lines use the same words.
func TestFlagPlaceholders(t *testing.T) {
	root := newRoot(&env{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			typ := f.Value.Type()
			if typ == "bool" {
				return
			}
			where := c.CommandPath() + " --" + f.Name
			if !strings.Contains(f.Usage, "`") {
				t.Errorf("%s: usage %q has no backquoted placeholder", where, f.Usage)
			}
			name, _ := pflag.UnquoteUsage(f)
			if !placeholders[name] {
				t.Errorf("%s: placeholder %q is not one of the agreed words", where, name)
			}
			if typ == "duration" && name != "DUR" {
				t.Errorf("%s: a duration's placeholder is %q, want DUR", where, name)
			}
			if strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint") || typ == "float64" {
				if name != "N" && name != "BYTES" {
					t.Errorf("%s: a number's placeholder is %q, want N or BYTES", where, name)
				}
			}
		})
		for _, w := range regexp.MustCompile(`\b[A-Z][A-Z-]*\b`).FindAllString(c.Use, -1) {
			if !placeholders[w] && w != "ID" && w != "NAME" {
				t.Errorf("%s: Use %q has placeholder %q, not one of the agreed words", c.CommandPath(), c.Use, w)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01
	if _, _, _, err := run(t, "", "man", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"hotlinectl.1", "hotlinectl-send.1", "hotlinectl-pki-issue.1", "hotlinectl-completion.1", "hotlinectl-version.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatalf("page %s: %v", page, err)
		}
		if !strings.Contains(string(b), ".TH ") || !strings.Contains(string(b), "Jan 2026") {
			t.Errorf("%s does not look like a dated man page:\n%.300s", page, b)
		}
	}
	send, _ := os.ReadFile(filepath.Join(dir, "hotlinectl-send.1"))
	if !strings.Contains(string(send), "precedence") {
		t.Errorf("hotlinectl-send.1 does not document --precedence")
	}
	if _, err := os.Stat(filepath.Join(dir, "hotlinectl-man.1")); err == nil {
		t.Errorf("the hidden man command got a page")
	}
	wantUsageError(t, "", []string{"man"}, "--dir DIR is required")
}
