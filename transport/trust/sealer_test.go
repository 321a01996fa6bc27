package trust

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Sealer's clock a test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func testSealer(uses int) (*Sealer, *fakeClock) {
	c := &fakeClock{t: time.Unix(1700000000, 0)}
	s := NewSealer()
	s.now, s.uses = c.now, uses
	return s, c
}

func encOf(t *testing.T, env []byte) []byte {
	t.Helper()
	e, err := ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return e.enc
}

// TestSealerWindow: messages sealed in one window share the encapsulated
// key, each opens only with its own binding, and every byte of each is
// covered; a new encapsulation follows the window's end and its last use.
func TestSealerWindow(t *testing.T) {
	dk, err := GenerateDecryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	to := dk.Public()
	s, clock := testSealer(3)
	op := NewOpener([]*DecryptionKey{dk})
	b1 := Binding{ID: "m1", Origin: "alpha", Dest: "bravo"}
	b2 := Binding{ID: "m2", Origin: "alpha", Dest: "bravo"}
	e1, err := s.Seal(to, b1, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.Seal(to, b2, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encOf(t, e1), encOf(t, e2)) {
		t.Fatal("two messages of one window have different encapsulated keys")
	}
	for _, c := range []struct {
		b    Binding
		env  []byte
		want string
	}{{b1, e1, "first"}, {b2, e2, "second"}} {
		for _, o := range []func(Binding, []byte) ([]byte, error){op.Open, func(b Binding, env []byte) ([]byte, error) { return Open([]*DecryptionKey{dk}, b, env) }} {
			pt, err := o(c.b, c.env)
			if err != nil || string(pt) != c.want {
				t.Fatalf("open %s = %q, %v", c.b.ID, pt, err)
			}
		}
	}
	if op.cachedLen() != 1 {
		t.Fatalf("opener caches %d contexts after one window, want 1", op.cachedLen())
	}
	// Only its own binding opens a message, even with the window's
	// secret cached.
	for _, b := range []Binding{b2, {ID: "m1", Origin: "charlie", Dest: "bravo"}, {ID: "m1", Origin: "alpha", Dest: "delta"}, {ID: "m1\x00", Origin: "alpha", Dest: "bravo"}} {
		if _, err := op.Open(b, e1); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("m1's envelope opened as %+v: %v", b, err)
		}
	}
	// Every byte counts (the key id's: another key, which this site does
	// not hold).
	for i := range e1 {
		bad := bytes.Clone(e1)
		bad[i] ^= 0x40
		if pt, err := op.Open(b1, bad); err == nil {
			t.Fatalf("envelope with byte %d changed opens: %q", i, pt)
		}
	}
	if op.cachedLen() != 1 {
		t.Fatalf("opener caches %d contexts after tampered envelopes, want 1", op.cachedLen())
	}
	// The third use is the last of the context; the fourth encapsulates.
	e3, err := s.Seal(to, b1, []byte("third"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encOf(t, e3), encOf(t, e1)) {
		t.Fatal("third message (of 3 uses) has a new encapsulated key")
	}
	if bytes.Equal(e3[envelopeHeader-nonceSize:envelopeHeader], e1[envelopeHeader-nonceSize:envelopeHeader]) {
		t.Fatal("one binding sealed twice in a window got one nonce")
	}
	e4, err := s.Seal(to, b1, []byte("fourth"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(encOf(t, e4), encOf(t, e1)) {
		t.Fatal("fourth message (of 3 uses) reuses the context")
	}
	// The window's end encapsulates anew.
	clock.t = clock.t.Add(sealWindow - time.Millisecond)
	e5, err := s.Seal(to, b2, []byte("fifth"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encOf(t, e5), encOf(t, e4)) {
		t.Fatal("a message within the window has a new encapsulated key")
	}
	clock.t = clock.t.Add(time.Millisecond)
	e6, err := s.Seal(to, b2, []byte("sixth"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(encOf(t, e6), encOf(t, e5)) {
		t.Fatal("a message after the window reuses the context")
	}
	for _, c := range []struct {
		b   Binding
		env []byte
	}{{b1, e3}, {b1, e4}, {b2, e5}, {b2, e6}} {
		if _, err := op.Open(c.b, c.env); err != nil {
			t.Fatal(err)
		}
	}
	if op.cachedLen() != 3 {
		t.Fatalf("opener caches %d contexts after three windows, want 3", op.cachedLen())
	}
	// A clock set back does not extend a window either.
	clock.t = clock.t.Add(-time.Hour)
	e7, err := s.Seal(to, b2, []byte("seventh"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(encOf(t, e7), encOf(t, e6)) {
		t.Fatal("a message after the clock went back reuses the context")
	}
}

// TestOpenerCacheBounded fills an Opener past its bound: it keeps the most
// recently used contexts, and an evicted one still opens (decapsulating).
func TestOpenerCacheBounded(t *testing.T) {
	dk, err := GenerateDecryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	op := NewOpener([]*DecryptionKey{dk})
	op.max = 4
	b := Binding{ID: "m", Origin: "alpha", Dest: "bravo"}
	var envs [][]byte
	for i := range 10 {
		env, err := Seal(dk.Public(), b, fmt.Appendf(nil, "payload %d", i))
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
		if _, err := op.Open(b, env); err != nil {
			t.Fatal(err)
		}
		if n := op.cachedLen(); n > op.max || n != min(i+1, op.max) {
			t.Fatalf("after %d windows the cache holds %d contexts (bound %d)", i+1, n, op.max)
		}
	}
	for i, env := range envs {
		_, hit := op.cache[contextID(mustParse(t, env))]
		if hit != (i >= 6) {
			t.Fatalf("window %d cached: %v", i, hit)
		}
	}
	for i, env := range envs {
		pt, err := op.Open(b, env)
		if err != nil || string(pt) != fmt.Sprintf("payload %d", i) {
			t.Fatalf("window %d: %q, %v", i, pt, err)
		}
	}
	if op.cachedLen() != op.max || len(op.cache) != op.max {
		t.Fatalf("cache holds %d (%d) contexts, bound %d", op.cachedLen(), len(op.cache), op.max)
	}
}

func mustParse(t *testing.T, env []byte) *Envelope {
	t.Helper()
	e, err := ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSealerConcurrent seals and opens from many goroutines at once (run
// with -race), across window ends and a small cache.
func TestSealerConcurrent(t *testing.T) {
	dk, err := GenerateDecryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSealer()
	s.uses = 7
	op := NewOpener([]*DecryptionKey{dk})
	op.max = 3
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				b := Binding{ID: fmt.Sprintf("g%d-%d", g, i), Origin: "alpha", Dest: "bravo"}
				pt := fmt.Appendf(nil, "payload %s", b.ID)
				env, err := s.Seal(dk.Public(), b, pt)
				if err != nil {
					errs <- err
					return
				}
				got, err := op.Open(b, env)
				if err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("open %s: %q, %v", b.ID, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := op.cachedLen(); n > op.max {
		t.Fatalf("cache holds %d contexts, bound %d", n, op.max)
	}
}
