package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configs/lab and configs/lab3 are what lab init writes, byte for byte, so
// a lab at other ports is the same lab.
func TestLabConfigFilesMatchRepository(t *testing.T) {
	for _, tc := range []struct {
		dir             string
		sites, basePort int
	}{
		{"../../configs/lab", 2, 7000},
		{"../../configs/lab3", 3, 7200},
	} {
		files, err := LabConfigFiles(tc.sites, tc.basePort)
		if err != nil {
			t.Fatal(err)
		}
		have, _ := filepath.Glob(filepath.Join(tc.dir, "*.toml"))
		if len(have) != len(files) || len(files) != 3*tc.sites {
			t.Errorf("%s has %d configs, lab init --sites %d writes %d", tc.dir, len(have), tc.sites, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(tc.dir, f.Name))
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if !bytes.Equal(b, f.Data) {
				t.Errorf("%s/%s differs from lab init --sites %d --base-port %d:\n%s", tc.dir, f.Name, tc.sites, tc.basePort, f.Data)
			}
		}
	}
}

func TestLabInit(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "lab")
	var out, errb bytes.Buffer
	if err := Run(ctx, []string{"lab", "init", "--dir", dir, "--sites", "3", "--base-port", "7400"}, nil, &out, &errb); err != nil {
		t.Fatalf("lab init: %v", err)
	}
	for _, name := range []string{"alpha-1.toml", "charlie-3.toml", "pki/ca.crt", "pki/ca.key", "pki/charlie-3.crt", "pki/charlie-3.key"} {
		if !strings.Contains(out.String(), "wrote "+filepath.Join(dir, name)+"\n") {
			t.Errorf("output does not report %s:\n%s", name, out.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "bravo-2.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`raft = "127.0.2.2:7400"`, `fiber = "127.0.3.1:7500"`, `sat = "127.1.1.3:7500"`, `node = "bravo-2"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bravo-2.toml lacks %s", want)
		}
	}
	// Again with the same flags: nothing to do, nothing reported.
	out.Reset()
	if err := Run(ctx, []string{"lab", "init", "--dir", dir, "--sites", "3", "--base-port", "7400"}, nil, &out, &errb); err != nil || out.Len() != 0 {
		t.Fatalf("second lab init: %v, output %q", err, out.String())
	}
	// Another lab into the same directory is refused, and changes nothing.
	err = Run(ctx, []string{"lab", "init", "--dir", dir, "--base-port", "7600"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "alpha-1.toml exists with other contents") {
		t.Fatalf("lab init over another lab: %v", err)
	}
	if b2, _ := os.ReadFile(filepath.Join(dir, "bravo-2.toml")); !bytes.Equal(b, b2) {
		t.Error("refused lab init changed bravo-2.toml")
	}
	for _, args := range [][]string{
		{"lab", "init"},
		{"lab", "init", "--dir", dir, "--sites", "1"},
		{"lab", "init", "--dir", dir, "--sites", "10"},
		{"lab", "init", "--dir", dir, "--base-port", "65500"},
		{"lab", "init", "--dir", dir, "--base-port", "0"},
	} {
		if err := Run(ctx, args, nil, &out, &errb); ExitCode(err) != 2 {
			t.Errorf("%v: %v (exit %d), want a usage error", args, err, ExitCode(err))
		}
	}
}
