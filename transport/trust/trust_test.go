package trust

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

func siteKeys(t testing.TB, dir, site string) (*SigningKey, *DecryptionKey) {
	t.Helper()
	if _, err := CreateSiteKeys(dir, site); err != nil {
		t.Fatal(err)
	}
	sk, err := LoadSigningKey(filepath.Join(dir, SigningKeyFile(site)))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := LoadDecryptionKey(filepath.Join(dir, DecryptionKeyFile(site)))
	if err != nil {
		t.Fatal(err)
	}
	return sk, dk
}

func keyring(t testing.TB, dir string, sites ...string) *Keyring {
	t.Helper()
	var all []byte
	for _, s := range sites {
		b, err := os.ReadFile(filepath.Join(dir, PublicKeysFile(s)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	k, err := ParseKeyring(all)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRoundTrips signs a batch statement, seals a payload and signs a
// checkpoint with keys written to and read from files, and checks each
// verifies with the pinned keys and fails when tampered.
func TestRoundTrips(t *testing.T) {
	dir := t.TempDir()
	ask, _ := siteKeys(t, dir, "alpha")
	_, bdk := siteKeys(t, dir, "bravo")
	ring := keyring(t, dir, "alpha", "bravo")

	// Envelope.
	to, err := ring.EncryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	b := Binding{ID: "m1", Origin: "alpha", Dest: "bravo"}
	env, err := Seal(to, b, []byte("secret payload"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("secret")) {
		t.Fatal("envelope holds the plaintext")
	}
	pt, err := Open([]*DecryptionKey{bdk}, b, env)
	if err != nil || string(pt) != "secret payload" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := Open([]*DecryptionKey{bdk}, Binding{ID: "m2", Origin: "alpha", Dest: "bravo"}, env); err == nil {
		t.Fatal("envelope opened for another message")
	}

	// Statement over message leaves.
	ms := []queue.Message{
		{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: queue.Flash, Seq: 1, Payload: env},
		{ID: "m2", Origin: "alpha", Dest: "bravo", Precedence: queue.Flash, Seq: 2, Payload: []byte("x")},
		{ID: "m3", Origin: "alpha", Dest: "bravo", Precedence: queue.Flash, Seq: 3},
	}
	leaves := MessageLeaves(ms)
	st, err := NewStatement(KindMessages, "bravo", queue.Flash, 1, 3, leaves, 42)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignStatement(ask, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSigned(signed.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Verify(got); err != nil {
		t.Fatal(err)
	}
	if err := got.Covers(leaves); err != nil {
		t.Fatal(err)
	}
	for i := range leaves {
		p, err := Prove(leaves, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckInclusion(got.Root, int64(got.Count), int64(i), leaves[i], p); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	for _, half := range []int{0, SignatureSize - 1} {
		bad := *got
		bad.Sig = append([]byte(nil), got.Sig...)
		bad.Sig[half] ^= 1
		if err := ring.Verify(&bad); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("flipped signature byte %d: %v", half, err)
		}
	}
	ms[1].Payload = []byte("y")
	if err := got.Covers(MessageLeaves(ms)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed payload: %v", err)
	}

	// Checkpoint.
	note, err := SignCheckpoint(ask, Checkpoint{Site: "alpha", Size: 7, Root: leaves[0]})
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(note, ring)
	if err != nil || c.Size != 7 || c.Root != leaves[0] || c.Site != "alpha" {
		t.Fatalf("OpenCheckpoint = %+v, %v", c, err)
	}
	note[5] ^= 1
	if _, err := OpenCheckpoint(note, ring); err == nil {
		t.Fatal("tampered checkpoint opened")
	}
}
