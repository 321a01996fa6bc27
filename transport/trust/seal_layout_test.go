package trust

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"github.com/hotline-link/hotline/queue"
)

// TestEnvelopeLayoutQueueReads pins the part of an envelope package queue
// reads without importing trust (queue/sealed.go): the magic, then after
// the key id the plaintext's SHA-256, so that queue's idempotency rule
// sees two seals of one plaintext as the same payload.
func TestEnvelopeLayoutQueueReads(t *testing.T) {
	dk, err := GenerateDecryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	if string(envelopeMagic) != queue.SealedMagic {
		t.Fatalf("envelope magic %q, queue reads %q", envelopeMagic, queue.SealedMagic)
	}
	pt := []byte("the same plaintext")
	b := Binding{ID: "m1", Origin: "alpha", Dest: "bravo"}
	e1, err := Seal(dk.Public(), b, pt)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := Seal(dk.Public(), Binding{ID: "m2", Origin: "alpha", Dest: "bravo"}, pt)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(e1, e2) {
		t.Fatal("two seals of one plaintext are equal")
	}
	sum := sha256.Sum256(pt)
	for _, env := range [][]byte{e1, e2} {
		if got := env[queue.SealedSumOffset : queue.SealedSumOffset+sha256.Size]; !bytes.Equal(got, sum[:]) {
			t.Fatalf("bytes %d.. of the envelope are %x, want the plaintext's SHA-256 %x", queue.SealedSumOffset, got, sum)
		}
		h, err := ParseEnvelope(env)
		if err != nil || h.PlaintextHash != sum {
			t.Fatalf("ParseEnvelope = %+v, %v", h, err)
		}
	}
	// What queue compares: an item sealed anew with the same idempotency
	// key and plaintext repeats the stored message; another plaintext is a
	// conflict.
	st, err := queue.Open(filepath.Join(t.TempDir(), "state.db"), "alpha", queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	submit := func(index uint64, id string, env []byte) queue.SubmitResult {
		t.Helper()
		cmd := queue.Command{Op: queue.OpSubmit, Time: int64(index), Submit: &queue.Submit{Origin: "alpha", Items: []queue.SubmitItem{
			{ID: id, Key: "k", Dest: "bravo", Precedence: queue.Flash, Payload: env, Flags: queue.FlagSealed}}}}
		data, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		res := st.Apply([]queue.Entry{{Index: index, Data: data}})
		if len(res) != 1 || res[0].Err != "" || len(res[0].Submit) != 1 {
			t.Fatalf("apply submit %s: %+v", id, res)
		}
		return res[0].Submit[0]
	}
	if r := submit(1, "m1", e1); r.Err != "" || r.Existing {
		t.Fatalf("first submit: %+v", r)
	}
	stored, err := st.LookupKey("k")
	if err != nil {
		t.Fatal(err)
	}
	e3, err := Seal(dk.Public(), Binding{ID: "m3", Origin: "alpha", Dest: "bravo"}, []byte("another plaintext"))
	if err != nil {
		t.Fatal(err)
	}
	item := func(env []byte, flags uint32) *queue.SubmitItem {
		return &queue.SubmitItem{Key: "k", Dest: "bravo", Precedence: queue.Flash, Payload: env, Flags: flags}
	}
	for _, c := range []struct {
		name string
		it   *queue.SubmitItem
		same bool
	}{
		{"sealed anew", item(e2, queue.FlagSealed), true},
		{"the plaintext", item(pt, 0), true},
		{"another plaintext sealed", item(e3, queue.FlagSealed), false},
		{"the envelope as plaintext", item(e1, 0), false},
	} {
		if got := queue.SameSubmission(stored, c.it); got != c.same {
			t.Errorf("SameSubmission(%s) = %v, want %v", c.name, got, c.same)
		}
	}
	if r := submit(2, "m2", e2); r.Err != "" || !r.Existing || r.ID != "m1" {
		t.Fatalf("retried submit sealed anew: %+v, want m1 existing", r)
	}
	if r := submit(3, "m3", e3); r.Err != queue.ErrKeyConflict.Error() {
		t.Fatalf("other plaintext under the key: %+v, want a key conflict", r)
	}
}
