package queue

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// TestSealedItemValidate: a submit item flagged sealed must carry an
// envelope's header (what the idempotency rule reads); anything shorter
// or without the magic is refused when applied, and nothing is stored.
func TestSealedItemValidate(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	sum := sha256.Sum256([]byte("plain"))
	good := append([]byte(SealedMagic+"\x00\x00\x00\x01"), sum[:]...)
	good = append(good, "ciphertext"...)
	for _, c := range []struct {
		name    string
		payload []byte
		ok      bool
	}{
		{"envelope header", good, true},
		{"plaintext", []byte("plain"), false},
		{"short", good[:sealedMin-1], false},
		{"wrong magic", append([]byte("HLE0"), good[4:]...), false},
	} {
		it := SubmitItem{ID: "id-" + c.name, Dest: "bravo", Precedence: Flash, Payload: c.payload, Flags: FlagSealed}
		if err := it.Validate(); (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
		res := l.apply(t, s, Command{Op: OpSubmit, Time: t0, Submit: &Submit{Items: []SubmitItem{it}}})
		if got := res[0].Submit[0].Err == ""; got != c.ok {
			t.Errorf("%s: applied with result %+v, want ok %v", c.name, res[0].Submit[0], c.ok)
		}
		if _, err := s.Lookup(it.ID); (err == nil) != c.ok {
			t.Errorf("%s: Lookup after apply: %v", c.name, err)
		}
	}
}
