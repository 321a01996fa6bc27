package trust

import (
	"fmt"
	"testing"
)

// benchPayload is the payload size of hotlinectl bench's default run.
const benchPayload = 512

func benchKey(b *testing.B) *DecryptionKey {
	b.Helper()
	dk, err := GenerateDecryptionKey("bravo")
	if err != nil {
		b.Fatal(err)
	}
	return dk
}

func benchBinding(i int) Binding {
	return Binding{ID: fmt.Sprintf("m%d", i), Origin: "alpha", Dest: "bravo"}
}

// BenchmarkSealOneShot is one message sealed by Seal: a KEM
// encapsulation per message.
func BenchmarkSealOneShot(b *testing.B) {
	dk := benchKey(b)
	pt := make([]byte, benchPayload)
	b.SetBytes(benchPayload)
	for i := 0; b.Loop(); i++ {
		if _, err := Seal(dk.Public(), benchBinding(i), pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenOneShot is one message opened by Open: a KEM
// decapsulation per message.
func BenchmarkOpenOneShot(b *testing.B) {
	dk := benchKey(b)
	pt := make([]byte, benchPayload)
	const n = 32
	envs := make([][]byte, n)
	for i := range envs {
		env, err := Seal(dk.Public(), benchBinding(i), pt)
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	keys := []*DecryptionKey{dk}
	b.SetBytes(benchPayload)
	for i := 0; b.Loop(); i++ {
		if _, err := Open(keys, benchBinding(i%n), envs[i%n]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchWindow is how many messages the windowed benchmarks seal per
// context.
const benchWindow = 32

// BenchmarkSeal is one message sealed by a Sealer whose context serves
// benchWindow messages.
func BenchmarkSeal(b *testing.B) {
	dk := benchKey(b)
	pt := make([]byte, benchPayload)
	s := NewSealer()
	s.uses = benchWindow
	b.SetBytes(benchPayload)
	for i := 0; b.Loop(); i++ {
		if _, err := s.Seal(dk.Public(), benchBinding(i), pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is one message opened by an Opener, the messages sealed
// benchWindow to a context; every window is new to the Opener (one
// decapsulation per benchWindow messages).
func BenchmarkOpen(b *testing.B) {
	dk := benchKey(b)
	pt := make([]byte, benchPayload)
	s := NewSealer()
	s.uses = benchWindow
	const windows = 64
	envs := make([][]byte, windows*benchWindow)
	for i := range envs {
		env, err := s.Seal(dk.Public(), benchBinding(i), pt)
		if err != nil {
			b.Fatal(err)
		}
		envs[i] = env
	}
	keys := []*DecryptionKey{dk}
	b.SetBytes(benchPayload)
	var op *Opener
	for i := 0; b.Loop(); i++ {
		j := i % len(envs)
		if j == 0 {
			op = NewOpener(keys) // a cold cache each round of windows
		}
		if _, err := op.Open(benchBinding(j), envs[j]); err != nil {
			b.Fatal(err)
		}
	}
}
