package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
)

// Fuzz targets for every decoder that reads bytes from a peer or a file:
// none may panic, each refuses what it cannot parse with ErrMalformed (or,
// for what is signed or sealed, ErrBadSignature / ErrUnknownKey), and what
// it accepts round-trips. Run one with, e.g.,
//
//	go test ./transport/trust/ -run '^$' -fuzz FuzzDecodeSigned -fuzztime 30s -fuzzminimizetime 3s
//
// (a new input is minimised for up to a minute by default, with no
// progress shown; the keyring and statement seeds are kilobytes long).
// Without -fuzz they run their seeds as tests.

// fuzzKeys is one site's keys and keyring, made once per target.
type fuzzKeys struct {
	sign *SigningKey
	dec  *DecryptionKey
	pub  []byte
	ring *Keyring
}

func newFuzzKeys(f *testing.F) *fuzzKeys {
	dir := f.TempDir()
	if _, err := CreateSiteKeys(dir, "alpha"); err != nil {
		f.Fatal(err)
	}
	sk, err := LoadSigningKey(filepath.Join(dir, SigningKeyFile("alpha")))
	if err != nil {
		f.Fatal(err)
	}
	dk, err := LoadDecryptionKey(filepath.Join(dir, DecryptionKeyFile("alpha")))
	if err != nil {
		f.Fatal(err)
	}
	pub := PublicLines(sk.Public(), dk.Public())
	ring, err := ParseKeyring(pub)
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzKeys{sign: sk, dec: dk, pub: pub, ring: ring}
}

func FuzzDecodeSigned(f *testing.F) {
	k := newFuzzKeys(f)
	st, err := NewStatement(KindDelivered, "bravo", 2, 5, 7, []Hash{{1}, {2}, {3}}, 99)
	if err != nil {
		f.Fatal(err)
	}
	s, err := SignStatement(k.sign, st)
	if err != nil {
		f.Fatal(err)
	}
	good := s.Encode()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeSigned(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeSigned error %v is not ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(got.Encode(), b) {
			t.Fatalf("decoded statement re-encodes differently")
		}
		if got.Count == 0 || got.Count > MaxLeaves || got.Last < got.First {
			t.Fatalf("accepted a statement of %d leaves, range %d..%d", got.Count, got.First, got.Last)
		}
		// Only the signed bytes verify.
		if err := k.ring.Verify(got); err == nil && !bytes.Equal(b, good) {
			t.Fatalf("a changed statement verifies")
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	k := newFuzzKeys(f)
	b := Binding{ID: "m1", Origin: "bravo", Dest: "alpha"}
	env, err := Seal(k.dec.Public(), b, []byte("payload"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add(env[:EnvelopeOverhead])
	f.Add(env[:EnvelopeOverhead-1])
	f.Add([]byte("HLE1"))
	f.Fuzz(func(t *testing.T, e []byte) {
		h, err := ParseEnvelope(e)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEnvelope error %v is not ErrMalformed", err)
			}
			return
		}
		if len(e) < EnvelopeOverhead || !bytes.Equal(h.PlaintextHash[:], e[8:40]) {
			t.Fatalf("accepted an envelope of %d bytes with header %x", len(e), h.PlaintextHash)
		}
		pt, err := Open([]*DecryptionKey{k.dec}, b, e)
		if err == nil && !bytes.Equal(e, env) {
			t.Fatalf("a changed envelope opened: %q", pt)
		}
		if err != nil && pt != nil {
			t.Fatalf("Open returned a plaintext with error %v", err)
		}
	})
}

func FuzzParseKeyring(f *testing.F) {
	k := newFuzzKeys(f)
	f.Add(k.pub)
	f.Add(append(append([]byte("# sites\n\n"), k.pub...), []byte("alpha kem 00000000 AAAA retired\n")...))
	f.Add([]byte("alpha sign 0 =\n"))
	f.Add([]byte("alpha kem"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ring, err := ParseKeyring(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseKeyring error %v is not ErrMalformed", err)
			}
			return
		}
		for _, site := range ring.Sites() {
			keys := ring.SigningKeys(site)
			if len(keys) == 0 {
				t.Fatalf("site %s listed without a signing key", site)
			}
			for _, v := range keys {
				if v.Site != site || keyID(site, algSign, v.Bytes()) != v.ID {
					t.Fatalf("pinned key %s of %s does not match its id", v.ID, site)
				}
				if got, err := ring.VerifyKey(site, v.ID); err != nil || got != v {
					t.Fatalf("VerifyKey(%s, %s) = %v, %v", site, v.ID, got, err)
				}
			}
		}
		_ = ring.Verifiers() // must not panic (nor be ambiguous: lines are deduplicated)
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	k := newFuzzKeys(f)
	note, err := SignCheckpoint(k.sign, Checkpoint{Site: "alpha", Size: 12, Root: Hash{7}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(note)
	f.Add(note[:len(note)/2])
	f.Add([]byte("hotline/alpha/audit\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— alpha AAAA\n"))
	f.Add(bytes.Repeat([]byte("x"), MaxCheckpointSize+1))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := OpenCheckpoint(msg, k.ring)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("OpenCheckpoint error %v is not one of the package's", err)
			}
			return
		}
		if len(msg) > MaxCheckpointSize {
			t.Fatalf("accepted a checkpoint of %d bytes", len(msg))
		}
		if c.Site != "alpha" || c.Size < 0 {
			t.Fatalf("accepted checkpoint %+v", c)
		}
		again, err := ParseCheckpoint(c.Text())
		if err != nil || *again != *c {
			t.Fatalf("checkpoint text does not round-trip: %+v, %v", again, err)
		}
	})
}

// FuzzParseBundle checks that any document ParseBundle accepts verifies
// without a panic, and that an accepted bundle reads back the same from
// its own JSON (its one spelling).
func FuzzParseBundle(f *testing.F) {
	e := newLabEvidence(f)
	data, err := e.bundle(f).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(bytes.Replace(data, []byte(`"version"`), []byte(`"Version"`), 1))
	f.Add([]byte(`{"version":1,"version":1}`))
	f.Add([]byte(`{"message":{"precedence":""},"proofs":[[{}]]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := ParseBundle(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseBundle error %v is not ErrMalformed", err)
			}
			return
		}
		_, _ = VerifyBundle(b, e.ring) // must not panic
		out, err := json.Marshal(b)
		if err != nil {
			return // a value Marshal refuses (an invalid precedence): VerifyBundle refused it too
		}
		again, err := ParseBundle(out)
		if err != nil {
			t.Fatalf("a parsed bundle's own JSON does not parse: %v", err)
		}
		if out2, _ := json.Marshal(again); !bytes.Equal(out, out2) {
			t.Fatalf("a bundle does not read back the same")
		}
	})
}
