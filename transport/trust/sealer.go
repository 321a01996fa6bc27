package trust

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

const (
	// sealWindow is how long a Sealer reuses a sender context.
	sealWindow = time.Second
	// sealUses is the most messages a Sealer seals with one context.
	sealUses = 4096
	// openCache is how many contexts an Opener keeps decapsulated.
	openCache = 4096
)

// A Sealer seals payloads (see envelope.go), reusing one sender context
// per destination key for at most sealWindow and sealUses messages, then
// encapsulating anew. Safe for concurrent use; one per node.
type Sealer struct {
	window time.Duration
	uses   int
	now    func() time.Time

	mu   sync.Mutex
	open map[*EncryptionKey]*sendWindow
}

// sendWindow is a sender context in use.
type sendWindow struct {
	*window
	born time.Time
	used int
}

// NewSealer returns a Sealer.
func NewSealer() *Sealer {
	return &Sealer{window: sealWindow, uses: sealUses, now: time.Now, open: map[*EncryptionKey]*sendWindow{}}
}

// Seal encrypts plaintext to to (the destination site's key) for the
// message named by b, returning the envelope.
func (s *Sealer) Seal(to *EncryptionKey, b Binding, plaintext []byte) ([]byte, error) {
	w, err := s.current(to)
	if err != nil {
		return nil, err
	}
	return w.seal(to.ID, b, plaintext)
}

// current is the context to seal one message to to with, encapsulating a
// new one when to has none, or its window is over or used up. Contexts of
// other keys whose window is over are dropped then.
func (s *Sealer) current(to *EncryptionKey) (*window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	w := s.open[to]
	if w == nil || w.used >= s.uses || now.Sub(w.born) >= s.window || now.Before(w.born) {
		for k, o := range s.open {
			if now.Sub(o.born) >= s.window || now.Before(o.born) {
				delete(s.open, k)
			}
		}
		nw, err := newWindow(to)
		if err != nil {
			delete(s.open, to)
			return nil, err
		}
		w = &sendWindow{window: nw, born: now}
		s.open[to] = w
	}
	w.used++
	return w.window, nil
}

// An Opener opens envelopes sealed to a site's keys, keeping the secrets
// of the last openCache contexts it decapsulated (least recently used
// first out), so the messages of one sealing window cost one
// decapsulation. A context is cached only once a message sealed with it
// has opened. Safe for concurrent use; one per node.
type Opener struct {
	keys []*DecryptionKey
	max  int

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*list.Element
	lru   list.List // of *cached, most recently used first
}

type cached struct {
	id     [sha256.Size]byte
	secret []byte
}

// NewOpener returns an Opener for keys (the site's current and retired
// decryption keys).
func NewOpener(keys []*DecryptionKey) *Opener {
	return &Opener{keys: keys, max: openCache, cache: map[[sha256.Size]byte]*list.Element{}}
}

// Open decrypts an envelope sealed for the message named by b, and checks
// the plaintext against the hash the envelope carries.
func (o *Opener) Open(b Binding, env []byte) ([]byte, error) {
	e, err := ParseEnvelope(env)
	if err != nil {
		return nil, err
	}
	var key *DecryptionKey
	for _, k := range o.keys {
		if k.ID() == e.KeyID {
			key = k
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: payload of %s is sealed to key %s, which this site does not hold", ErrUnknownKey, b.ID, e.KeyID)
	}
	id := contextID(e)
	if secret := o.lookup(id); secret != nil {
		return openWith(secret, e, b)
	}
	secret, err := decapsulate(key, e, b)
	if err != nil {
		return nil, err
	}
	pt, err := openWith(secret, e, b)
	if err != nil {
		return nil, err
	}
	o.add(id, secret)
	return pt, nil
}

// contextID names e's sender context: its key id and encapsulated key.
func contextID(e *Envelope) [sha256.Size]byte {
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(e.KeyID)))
	h.Write(e.enc)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

func (o *Opener) lookup(id [sha256.Size]byte) []byte {
	if o.max <= 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	el := o.cache[id]
	if el == nil {
		return nil
	}
	o.lru.MoveToFront(el)
	return el.Value.(*cached).secret
}

func (o *Opener) add(id [sha256.Size]byte, secret []byte) {
	if o.max <= 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if el := o.cache[id]; el != nil {
		o.lru.MoveToFront(el)
		return
	}
	o.cache[id] = o.lru.PushFront(&cached{id: id, secret: secret})
	for o.lru.Len() > o.max {
		last := o.lru.Back()
		o.lru.Remove(last)
		delete(o.cache, last.Value.(*cached).id)
	}
}

// cachedLen reports how many contexts o holds (for tests).
func (o *Opener) cachedLen() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lru.Len()
}
