package ctl_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestEvidenceBundles sends three messages from alpha to bravo in one
// batch (alpha's paths are down while they are submitted), reads them at
// bravo in one ack, and checks that "get --proof" at the origin (sent,
// delivered, read) and at the destination (received) writes bundles that
// "verify" accepts offline with the lab's keyring, and that a copy with
// one byte changed in a signature, the payload hash, a receipt, a path or
// an audit record fails, naming the part.
func TestEvidenceBundles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, func(c *daemon.Config) { c.AuditCheckpointInterval.Duration = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setPaths := func(down bool) {
		for _, node := range daemon.LabNodes("alpha") {
			for _, p := range lab.Configs[node].Paths {
				var err error
				if down {
					_, err = lab.Client(node).PathDown(ctx, "", p, client.ModeClose)
				} else {
					_, err = lab.Client(node).PathUp(ctx, "", p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	setPaths(true)
	var ids []string
	for i := range 3 {
		m, err := clustertest.SubmitRetrying(ctx, lab.Client("alpha-1"), client.SubmitRequest{To: "bravo", Precedence: "priority",
			Key: fmt.Sprintf("evidence-%d", i), Payload: []byte(fmt.Sprintf("evidence payload %d", i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	// Not sent yet: no statement covers it. An unknown id: not found.
	for id, code := range map[string]string{ids[0]: client.CodeConflict, "no-such-id": client.CodeNotFound} {
		var ae *client.APIError
		if _, err := lab.Client("alpha-2").Proof(ctx, id); !errors.As(err, &ae) || ae.Code != code {
			t.Fatalf("proof of %s: %v, want %s", id, err, code)
		}
	}
	setPaths(false)
	msgs := clustertest.DrainInbox(t, lab.Client("bravo-2"), 3, time.Minute)
	clustertest.AckAll(ctx, t, lab.Client("bravo-2"), "bravo-2", msgs)
	id := ids[1]
	clustertest.Eventually(t, time.Minute, id+" read at alpha", func() bool {
		m, err := lab.Client("alpha-3").Get(ctx, id)
		return err == nil && m.State == "read"
	})

	// The origin's audit log holds submitted, delivered and read once a
	// checkpoint covers them.
	clustertest.Eventually(t, time.Minute, "three audit records of "+id+" under a checkpoint at alpha", func() bool {
		data, err := lab.Client("alpha-2").Proof(ctx, id)
		if err != nil {
			return false
		}
		b, err := trust.ParseBundle(data)
		return err == nil && len(b.Audit) == 3
	})
	keys := filepath.Join(lab.Dir, "pki", trust.KeyringFile)
	dir := t.TempDir()
	origin, dest := filepath.Join(dir, "origin.json"), filepath.Join(dir, "dest.json")
	if _, err := lab.Hotlinectl(t, "alpha-2", "", "get", id, "--proof", origin); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Hotlinectl(t, "bravo-1", "", "get", id, "--proof", dest); err != nil {
		t.Fatal(err)
	}
	stdout, err := lab.Hotlinectl(t, "alpha-1", "", "get", id, "--proof", "-")
	if err != nil {
		t.Fatal(err)
	}
	var viaStdout trust.Bundle
	if err := json.Unmarshal([]byte(stdout), &viaStdout); err != nil || viaStdout.Message.ID != id {
		t.Fatalf("get --proof - printed %.200q: %v", stdout, err)
	}
	verify := func(file string, more ...string) (string, error) {
		// Offline: a socket that does not exist.
		return lab.Hotlinectl(t, "alpha-1", "", append([]string{"--socket", filepath.Join(dir, "no.sock"), "verify", file, "--keys", keys}, more...)...)
	}
	// The plaintext a destination client read (or its sender kept), and
	// another.
	right, wrong := filepath.Join(dir, "read.txt"), filepath.Join(dir, "other.txt")
	for file, text := range map[string]string{right: "evidence payload 1", wrong: "evidence payload 2"} {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for file, want := range map[string][]string{origin: {"envelope", "sent", "delivered", "read"}, dest: {"envelope", "received"}} {
		out, err := verify(file, "--plaintext", right)
		if err != nil {
			t.Fatalf("verify %s: %v\n%s", filepath.Base(file), err, out)
		}
		for _, kind := range append(want, "plaintext") {
			if !strings.Contains(out, "\nok   "+kind+" ") {
				t.Errorf("verify %s: no ok line for %s:\n%s", filepath.Base(file), kind, out)
			}
		}
		t.Logf("verify %s --plaintext:\n%s", filepath.Base(file), out)
		out, err = verify(file, "--plaintext", wrong)
		if ctl.ExitCode(err) != 1 || !errors.Is(err, trust.ErrPlaintext) || !strings.Contains(err.Error(), "--plaintext "+wrong) ||
			!strings.Contains(out, "FAIL plaintext ") {
			t.Errorf("verify %s --plaintext (another text): exit %d, %v\n%s", filepath.Base(file), ctl.ExitCode(err), err, out)
		}
	}

	// Tampered copies of the origin's bundle.
	data, err := os.ReadFile(origin)
	if err != nil {
		t.Fatal(err)
	}
	proof := func(doc map[string]any, kind string) map[string]any {
		for _, p := range doc["proofs"].([]any) {
			if p := p.(map[string]any); p["kind"] == kind {
				return p
			}
		}
		t.Fatalf("bundle has no %s proof", kind)
		return nil
	}
	flipHex := func(s string) string {
		b := []byte(s)
		b[0] = "01"[b[0]&1^1] // another digit: '0' for '1', '1' for '0'
		return string(b)
	}
	flipB64 := func(s string, at int) string {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		raw[(at+len(raw))%len(raw)] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	tampers := []struct {
		name, fails string
		change      func(doc map[string]any)
	}{
		{"signature", "sent", func(doc map[string]any) {
			p := proof(doc, "sent")
			p["statement"] = flipB64(p["statement"].(string), -1)
		}},
		{"payload hash", "sent", func(doc map[string]any) {
			m := doc["message"].(map[string]any)
			m["payload_sha256"] = flipHex(m["payload_sha256"].(string))
		}},
		{"receipt", "read", func(doc map[string]any) {
			r := proof(doc, "read")["receipt"].(map[string]any)
			at, err := r["read_at"].(json.Number).Int64()
			if err != nil {
				t.Fatal(err)
			}
			r["read_at"] = at + 1
		}},
		{"path", "delivered", func(doc map[string]any) {
			path := proof(doc, "delivered")["path"].([]any)
			if len(path) == 0 {
				t.Fatal("the delivered statement covers one message: no path to change")
			}
			path[0] = flipHex(path[0].(string))
		}},
		{"plaintext hash", "envelope", func(doc map[string]any) {
			e := doc["message"].(map[string]any)["envelope"].(map[string]any)
			e["plaintext_sha256"] = flipHex(e["plaintext_sha256"].(string))
		}},
		{"envelope", "envelope", func(doc map[string]any) {
			e := doc["message"].(map[string]any)["envelope"].(map[string]any)
			e["bytes"] = flipB64(e["bytes"].(string), -1)
		}},
		{"audit record", "audit 0", func(doc map[string]any) {
			audit, _ := doc["audit"].([]any)
			if len(audit) == 0 {
				t.Fatal("the bundle holds no audit record")
			}
			a := audit[0].(map[string]any)
			a["record"] = flipB64(a["record"].(string), 0)
		}},
	}
	for _, tc := range tampers {
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // times in nanoseconds do not fit a float64
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		tc.change(doc)
		out, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := verify(file)
		switch {
		case err == nil:
			t.Errorf("%s changed: verify passed:\n%s", tc.name, got)
		case !strings.Contains(err.Error(), tc.fails+": ") || !strings.Contains(got, "FAIL "+tc.fails+" "):
			t.Errorf("%s changed: verify does not name %s: %v\n%s", tc.name, tc.fails, err, got)
		default:
			t.Logf("%s changed: %v\n%s", tc.name, err, got)
		}
	}
	if bytes.Contains(data, []byte("evidence payload")) {
		t.Error("the bundle holds the plaintext")
	}
}

// TestVerifyRefuses checks verify's and get --proof's usage errors, and
// that a file that is not a bundle fails naming why, without a daemon.
func TestVerifyRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := trust.EnsureSiteKeys(dir, []string{"alpha", "bravo"}); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, trust.KeyringFile)
	notBundle := filepath.Join(dir, "x.json")
	if err := os.WriteFile(notBundle, []byte(`{"version":1,"message":{},"proofs":[],"extra":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"verify", notBundle}, 2, "verify needs --keys FILE"},
		{[]string{"verify", "--keys", keys}, 2, "verify takes one argument"},
		{[]string{"get", "x", "--proof", "-", "--json"}, 2, "drop --json"},
		{[]string{"verify", notBundle, "--keys", keys}, 1, `unknown field "extra"`},
		{[]string{"verify", filepath.Join(dir, "missing.json"), "--keys", keys}, 1, "no such file"},
		{[]string{"verify", notBundle, "--keys", notBundle}, 1, "keys"},
	} {
		var out, errOut bytes.Buffer
		err := ctl.Run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
		if ctl.ExitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("hotlinectl %q: exit %d, %v; want %d and %q", tc.args, ctl.ExitCode(err), err, tc.code, tc.text)
		}
	}
}
