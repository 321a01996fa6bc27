package daemon

import (
	"errors"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The documentation tests keep the README and the design document
// (docs/) true to the repository: every link stays inside it and leads
// somewhere, the package table of docs/DESIGN.md matches the packages and
// their imports, every package states its contract in a doc.go, and the
// arrows between packages point the way the design says.

const modulePath = "github.com/hotline-link/hotline"

// repoRoot is the repository's root, seen from this package's directory
// (where go test runs).
const repoRoot = ".."

// externalLinkAllow lists the external addresses a document may link to.
// It is empty on purpose: everything a reader must read is in the
// repository (a clone, or /usr/share/doc/hotline on an appliance, may have
// no network), so names of outside projects and standards are given in
// prose, never as links. Add an entry only with a reason next to it.
var externalLinkAllow = []string{}

// plannedPackages are packages that docs/DESIGN.md describes before they
// exist in this branch: issue 8 builds them in other branches. A planned
// package that does not exist yet is left out of the table check (and out
// of the import lists that name it); once it exists it is checked like any
// other. Empty this list once they have all landed.
var plannedPackages = []string{}

// TestDocsLinksStayInRepo checks every Markdown link (inline, reference,
// autolink, bare URL, HTML href/src) of README.md, docs/ and every other
// README in the repository: it must not leave the repository (no absolute
// path, no path that climbs above the root, no external URL outside
// externalLinkAllow), its file must exist, and its #anchor must name a
// heading of the file it points to.
func TestDocsLinksStayInRepo(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := markdownFiles(t, root)
	for _, want := range []string{"README.md", "docs/DESIGN.md", "docs/THREAT-MODEL.md"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing", want)
		}
	}
	checked := 0
	for _, rel := range files {
		raw, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range markdownLinks(string(raw)) {
			checked++
			if err := checkLink(root, rel, l.target); err != nil {
				t.Errorf("%s:%d: link %q: %v", rel, l.line, l.target, err)
			}
		}
	}
	if checked < 20 {
		t.Errorf("found only %d links in %v: the link scanner is broken", checked, files)
	}
}

// TestDocsLinkChecker shows that checkLink refuses what must be refused
// (and so that TestDocsLinksStayInRepo can fail).
func TestDocsLinkChecker(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, target, wantErr string // wantErr "" means accepted
	}{
		{"README.md", "docs/DESIGN.md", ""},
		{"README.md", "configs/lab/README.md", ""},
		{"README.md", "#socket-api", ""},
		{"docs/DESIGN.md", "../README.md#backup-and-restore", ""},
		{"docs/DESIGN.md", "../queue/doc.go", ""},
		{"configs/lab/README.md", "../lab3/README.md", ""},
		{"README.md", "../shared/DESIGN.md", "outside the repository"},
		{"docs/DESIGN.md", "../../shared/DESIGN.md", "outside the repository"},
		{"README.md", "/etc/hotline/hotline.toml", "absolute path"},
		{"README.md", "https://example.com/design", "external link"},
		{"README.md", "http://example.com", "external link"},
		{"README.md", "mailto:someone@example.com", "external link"},
		{"README.md", "file:///tmp/x", "external link"},
		{"README.md", "//example.com/x", "absolute path"},
		{"README.md", "docs/NOWHERE.md", "no such file"},
		{"README.md", "#no-such-section", "no heading"},
		{"README.md", "docs/DESIGN.md#no-such-section", "no heading"},
	} {
		err := checkLink(root, c.file, c.target)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %q refused: %v", c.file, c.target, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: %q: got %v, want an error containing %q", c.file, c.target, err, c.wantErr)
		}
	}

	doc := "Text [a](one.md) and ![b](img.png \"title\") and [multi\nline](#x).\n" +
		"`[not](code.md)` and <https://example.com> and https://bare.example\n" +
		"```sh\ncurl http://hotline/v1/status [no](link.md)\n```\n" +
		"[ref]: ref.md\n<a href=\"page.md\">x</a>\n"
	var got []string
	for _, l := range markdownLinks(doc) {
		got = append(got, l.target)
	}
	want := []string{"one.md", "img.png", "#x", "https://example.com", "https://bare.example", "ref.md", "page.md"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("markdownLinks found %q, want %q", got, want)
	}
}

// TestDocsPackageTable checks docs/DESIGN.md's package table against the
// code: one row per package of the module, and each row's imports (the
// module's own packages) as the package imports them.
func TestDocsPackageTable(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := modulePackages(t, root)
	rows := designPackageRows(t, filepath.Join(root, "docs", "DESIGN.md"))
	exists := func(p string) bool { _, ok := pkgs[p]; return ok }
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		imports := rows[name]
		actual, ok := pkgs[name]
		if !ok {
			if slices.Contains(plannedPackages, name) {
				t.Logf("docs/DESIGN.md: %s is planned and does not exist yet: not checked", name)
				continue
			}
			t.Errorf("docs/DESIGN.md describes package %s, which does not exist (a directory with Go files)", name)
			continue
		}
		var want []string
		for _, imp := range imports {
			if !exists(imp) && slices.Contains(plannedPackages, imp) {
				continue // planned, not yet importable
			}
			want = append(want, imp)
		}
		if !slices.Equal(want, actual.imports) {
			t.Errorf("docs/DESIGN.md: %s imports %s, but the table says %s", name, listOrDash(actual.imports), listOrDash(want))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		if _, ok := rows[name]; !ok {
			t.Errorf("docs/DESIGN.md: package %s has no row in the package table", name)
		}
	}
}

// TestDocsEveryPackageHasDocGo checks that every package of the module
// states its contract in a doc.go: a package comment there ("Package x"
// or, for a command, "Command x") and in no other file.
func TestDocsEveryPackageHasDocGo(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := modulePackages(t, root)
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		p := pkgs[name]
		fset := token.NewFileSet()
		var inDoc string
		var elsewhere []string
		for _, f := range p.files {
			af, err := parser.ParseFile(fset, filepath.Join(p.dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc == nil {
				continue
			}
			if f == "doc.go" {
				inDoc = af.Doc.Text()
			} else {
				elsewhere = append(elsewhere, f)
			}
		}
		prefix := "Package " + p.name + " "
		if p.name == "main" {
			prefix = "Command " + filepath.Base(p.dir) + " "
		}
		switch {
		case !slices.Contains(p.files, "doc.go"):
			t.Errorf("%s: no doc.go (the package's contract goes there)", name)
		case inDoc == "":
			t.Errorf("%s: doc.go has no package comment", name)
		case !strings.HasPrefix(inDoc, prefix):
			t.Errorf("%s: doc.go's comment should begin %q, begins %q", name, prefix, firstLine(inDoc))
		case len(strings.Fields(inDoc)) < 25:
			t.Errorf("%s: doc.go's comment is %d words: too short to state a contract", name, len(strings.Fields(inDoc)))
		}
		if len(elsewhere) > 0 {
			t.Errorf("%s: package comment in %s besides doc.go: keep it in doc.go only", name, strings.Join(elsewhere, ", "))
		}
	}
}

// TestDocsPackageArrows checks the arrows docs/DESIGN.md draws ("Packages
// and their arrows"): the lower layers import nothing above them, and only
// the daemon's main and the test labs import daemon.
func TestDocsPackageArrows(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := modulePackages(t, root)
	// onlyOurs: the module's packages each one may import (nil: any).
	// forbidden: other imports it must not have.
	rules := []struct {
		pkg       string
		onlyOurs  []string
		forbidden []string
		why       string
	}{
		{"queue", []string{"internal/boltcheck"}, []string{"github.com/hashicorp/raft", "github.com/quic-go/quic-go", "net", "net/http", "os/exec"},
			"queue is a deterministic state machine: no Raft, no network, nothing of ours above it"},
		{"consensus", []string{"internal/alpn", "internal/boltcheck"}, []string{"github.com/quic-go/quic-go"},
			"consensus replicates opaque bytes: it knows nothing of messages, the link or the daemon"},
		{"transport", []string{"internal/alpn", "queue", "transport/pki"}, []string{"github.com/hashicorp/raft", "go.etcd.io/bbolt"},
			"transport touches no storage and knows nothing of Raft or the daemon"},
		{"transport/pki", []string{}, nil, "pki is a leaf"},
		{"internal/boltcheck", []string{}, nil, "boltcheck is a leaf"},
		{"internal/alpn", []string{}, nil, "alpn is a leaf"},
		{"daemon/client", []string{}, nil, "the client depends on nothing of the daemon: other programs import it"},
	}
	for _, r := range rules {
		p, ok := pkgs[r.pkg]
		if !ok {
			t.Errorf("package %s does not exist", r.pkg)
			continue
		}
		for _, imp := range p.imports {
			if r.onlyOurs != nil && !slices.Contains(r.onlyOurs, imp) {
				t.Errorf("%s imports %s: %s (docs/DESIGN.md)", r.pkg, imp, r.why)
			}
		}
		for _, imp := range p.allImports {
			for _, f := range r.forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("%s imports %s: %s (docs/DESIGN.md)", r.pkg, imp, r.why)
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		if slices.Contains(pkgs[name].imports, "daemon") && name != "cmd/hotlined" && name != "daemon/clustertest" {
			t.Errorf("%s imports daemon: only cmd/hotlined and the test labs may (docs/DESIGN.md); the CLI reaches a daemon through daemon/client", name)
		}
	}
}

// modPackage is one package of the module, as go/build sees it (non-test
// files only).
type modPackage struct {
	dir        string
	name       string   // the package clause's name
	files      []string // its non-test Go files
	imports    []string // the module's own packages it imports, without the module path, sorted
	allImports []string // every import path
}

// modulePackages returns the module's packages by import path without the
// module path ("queue", "daemon/ctl"), skipping testdata, hidden
// directories and directories that hold no Go files.
func modulePackages(t *testing.T, root string) map[string]modPackage {
	t.Helper()
	pkgs := map[string]modPackage{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
			return filepath.SkipDir
		}
		if path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		bp, err := build.ImportDir(path, 0)
		if _, ok := errors.AsType[*build.NoGoError](err); ok {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		p := modPackage{dir: path, name: bp.Name, files: bp.GoFiles, allImports: bp.Imports}
		for _, imp := range bp.Imports {
			if s, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				p.imports = append(p.imports, s)
			}
		}
		slices.Sort(p.imports)
		pkgs[filepath.ToSlash(rel)] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	return pkgs
}

// designPackageRows reads the package table of docs/DESIGN.md (between the
// "<!-- packages" and "<!-- end of packages -->" comments): package name
// to the module packages its imports column lists, sorted.
func designPackageRows(t *testing.T, file string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "<!-- packages")
	end := strings.Index(doc, "<!-- end of packages -->")
	if start < 0 || end < start {
		t.Fatalf("%s: no package table between <!-- packages ... --> and <!-- end of packages -->", file)
	}
	code := regexp.MustCompile("`([^`]+)`")
	rows := map[string][]string{}
	for _, line := range strings.Split(doc[start:end], "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) != 3 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		m := code.FindStringSubmatch(cells[0])
		name := m[1]
		if _, dup := rows[name]; dup {
			t.Errorf("%s: package %s has two rows", file, name)
		}
		imports := []string{}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			imports = append(imports, m[1])
		}
		if len(imports) == 0 && strings.TrimSpace(cells[2]) != "—" {
			t.Errorf("%s: package %s: imports column %q is neither a list of `packages` nor —", file, name, strings.TrimSpace(cells[2]))
		}
		slices.Sort(imports)
		rows[name] = imports
	}
	if len(rows) < 10 {
		t.Fatalf("%s: package table has only %d rows", file, len(rows))
	}
	return rows
}

// markdownFiles lists, relative to root, README.md, every Markdown file
// under docs/ and every other README.md of the repository (hidden
// directories and testdata skipped).
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "README.md" || (strings.HasPrefix(rel, "docs/") && strings.HasSuffix(rel, ".md")) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// mdLink is one link of a Markdown document.
type mdLink struct {
	target string
	line   int
}

var (
	fenceRE     = regexp.MustCompile("(?m)^[ \t]*(```+|~~~+)")
	codeSpanRE  = regexp.MustCompile("``(?:[^`]|`[^`])*?``|`[^`]*`")
	inlineRE    = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	refDefRE    = regexp.MustCompile(`(?m)^[ \t]{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	autolinkRE  = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]+)>`)
	bareURLRE   = regexp.MustCompile(`(?:^|[\s(])((?:https?|ftp)://[^\s)<>]+)`)
	htmlAttrRE  = regexp.MustCompile(`(?i)<(?:a|img)\b[^>]*\s(?:href|src)\s*=\s*["']([^"']*)["']`)
	headingRE   = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$`)
	mdLinkTxtRE = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// blankFences blanks fenced code blocks, keeping their lines (so line
// numbers stay right): a "# comment" in a shell block is not a heading,
// and what is in a block is not a link.
func blankFences(doc string) string {
	var b strings.Builder
	inFence := ""
	for _, line := range strings.SplitAfter(doc, "\n") {
		m := fenceRE.FindStringSubmatch(line)
		switch {
		case m != nil && inFence == "":
			inFence = m[1][:1]
		case m != nil && strings.HasPrefix(m[1], inFence):
			inFence = ""
		case inFence == "":
			b.WriteString(line)
			continue
		}
		b.WriteString(blank(line))
	}
	return b.String()
}

// blank replaces every character of s but newlines by a space.
func blank(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		return ' '
	}, s)
}

// markdownLinks returns the links of a Markdown document outside code.
func markdownLinks(doc string) []mdLink {
	text := codeSpanRE.ReplaceAllStringFunc(blankFences(doc), blank)
	var links []mdLink
	add := func(re *regexp.Regexp) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			links = append(links, mdLink{target: text[m[2]:m[3]], line: 1 + strings.Count(text[:m[2]], "\n")})
		}
	}
	add(inlineRE)
	add(refDefRE)
	add(autolinkRE)
	add(htmlAttrRE)
	// Bare URLs (GitHub links them) that are not already the target of a
	// link above.
	rest := autolinkRE.ReplaceAllStringFunc(inlineRE.ReplaceAllStringFunc(text, blank), blank)
	for _, m := range bareURLRE.FindAllStringSubmatchIndex(rest, -1) {
		links = append(links, mdLink{target: strings.TrimRight(rest[m[2]:m[3]], ".,;:"), line: 1 + strings.Count(rest[:m[2]], "\n")})
	}
	return links
}

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// checkLink checks one link target of file (relative to root).
func checkLink(root, file, target string) error {
	switch {
	case target == "":
		return errors.New("empty link")
	case schemeRE.MatchString(target):
		if slices.Contains(externalLinkAllow, target) {
			return nil
		}
		return errors.New("external link: the documentation must be readable from the repository alone (see externalLinkAllow in daemon/docs_test.go)")
	case strings.HasPrefix(target, "/"):
		return errors.New("absolute path: link relative to the file instead")
	}
	path, anchor, _ := strings.Cut(target, "#")
	path, _, _ = strings.Cut(path, "?")
	dest := filepath.Join(root, filepath.FromSlash(file))
	if path != "" {
		dest = filepath.Join(filepath.Dir(dest), filepath.FromSlash(path))
		rel, err := filepath.Rel(root, dest)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return errors.New("leads outside the repository")
		}
		if _, err := os.Stat(dest); err != nil {
			return errors.New("no such file in the repository")
		}
	}
	if anchor == "" {
		return nil
	}
	if !strings.HasSuffix(dest, ".md") {
		return errors.New("an anchor into a file that is not Markdown")
	}
	raw, err := os.ReadFile(dest)
	if err != nil {
		return err
	}
	if !slices.Contains(headingAnchors(string(raw)), anchor) {
		return errors.New("no heading in " + filepath.Base(dest) + " has the anchor #" + anchor)
	}
	return nil
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown document: the heading's text, lower-cased, without punctuation,
// spaces as hyphens; a repeated anchor gets -1, -2, ...
func headingAnchors(doc string) []string {
	var anchors []string
	seen := map[string]int{}
	for _, m := range headingRE.FindAllStringSubmatch(blankFences(doc), -1) {
		text := mdLinkTxtRE.ReplaceAllString(m[1], "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			seen[a] = n + 1
			a = a + "-" + strconv.Itoa(n)
		} else {
			seen[a] = 1
		}
		anchors = append(anchors, a)
	}
	return anchors
}

func listOrDash(s []string) string {
	if len(s) == 0 {
		return "—"
	}
	return strings.Join(s, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
