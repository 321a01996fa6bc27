package ctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPKIInitIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ctx := context.Background()
	var out, errb bytes.Buffer
	if err := Run(ctx, []string{"pki", "init", "--dir", dir}, nil, &out, &errb); err != nil {
		t.Fatalf("pki init: %v", err)
	}
	wantModes := map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600}
	for name, mode := range wantModes {
		p := filepath.Join(dir, name)
		checkMode(t, p, mode)
		if !strings.Contains(out.String(), "wrote "+p+"\n") {
			t.Errorf("pki init output %q does not report %s", out.String(), p)
		}
	}

	out.Reset()
	err := Run(ctx, []string{"pki", "init", "--dir", dir}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second pki init: error = %v, want a refusal", err)
	}
	if errors.Is(err, ErrUsage) {
		t.Errorf("second pki init: refusal %v is reported as a usage error", err)
	}

	out.Reset()
	if err := Run(ctx, []string{"pki", "issue", "--dir", dir, "--site", "alpha", "--node", "a1"}, nil, &out, &errb); err != nil {
		t.Fatalf("pki issue: %v", err)
	}
	for name, mode := range map[string]os.FileMode{"a1.crt": 0o644, "a1.key": 0o600} {
		p := filepath.Join(dir, name)
		checkMode(t, p, mode)
		if !strings.Contains(out.String(), "wrote "+p+"\n") {
			t.Errorf("pki issue output %q does not report %s", out.String(), p)
		}
	}
	err = Run(ctx, []string{"pki", "issue", "--dir", dir, "--site", "alpha", "--node", "a1"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second pki issue: error = %v, want a refusal", err)
	}
}

func TestPKIIssueWithoutCA(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := Run(context.Background(), []string{"pki", "issue", "--dir", dir, "--site", "alpha", "--node", "a1"}, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("pki issue without CA: error = %v, want a hint to run init", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("pki issue without CA left files behind: %v", entries)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", path, got, want)
	}
	if fi.Size() == 0 {
		t.Errorf("%s is empty", path)
	}
}
