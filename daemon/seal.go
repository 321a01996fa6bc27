package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// Payloads are sealed end to end (package transport/trust, envelope.go):
// the node that accepts a submit seals the payload to the destination
// site's current encryption key, bound to the message's id, origin and
// destination, and flags it queue.FlagSealed. From then on the envelope is
// what is proposed, stored, forwarded and snapshotted at both sites; the
// origin never stores the plaintext, only the envelope whose header holds
// the plaintext's SHA-256. A destination client's inbox read is the only
// place an envelope is opened.
//
// max_message_size limits the plaintext a client sends; what is stored
// and sent is at most payloadLimit (trust.EnvelopeOverhead more).

// payloadLimit is the most bytes a stored (sealed) payload may have.
func (c *Config) payloadLimit() int64 { return c.MaxMessageSize + trust.EnvelopeOverhead }

// sealer seals payloads at submit and opens them at inbox reads, and keeps
// the unread inbox messages whose payloads do not open, for the alarm.
// Safe for concurrent use.
type sealer struct {
	site  string
	keys  *siteKeys
	store *queue.Store
	log   *slog.Logger
	// seals and opens amortize the KEM: one encapsulation per destination
	// key and window, one decapsulation per window read.
	seals *trust.Sealer
	opens *trust.Opener
	// failures is hotline_decrypt_failures_total{stage}: "read", an inbox
	// payload that does not open (counted once per message); "receive", an
	// inbound message refused because this site could not open it
	// (unsealed, malformed, or sealed to a key it does not hold).
	failures *prometheus.CounterVec

	mu  sync.Mutex
	bad map[string]string // unread inbox message id → why it does not open
}

// maxUndecryptable bounds the messages the alarm names one by one.
const maxUndecryptable = 1000

func newSealer(cfg *Config, keys *siteKeys, store *queue.Store, log *slog.Logger, reg prometheus.Registerer) *sealer {
	s := &sealer{site: cfg.Site, keys: keys, store: store, log: log, bad: map[string]string{},
		seals: trust.NewSealer(), opens: trust.NewOpener(keys.dec),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_decrypt_failures_total",
			Help: "Payloads this node could not open, by stage: read (an inbox message whose envelope does not decrypt with this site's keys: tampered, or sealed to a key it does not hold; counted once per message, an alarm while it is unread), receive (an inbound batch refused because a payload is not sealed to a key of this site)."},
			[]string{"stage"})}
	s.failures.WithLabelValues("read")
	s.failures.WithLabelValues("receive")
	reg.MustRegister(s.failures)
	return s
}

// seal replaces it's payload with its envelope, sealed to the destination
// site's current encryption key, and flags it sealed.
func (s *sealer) seal(it *queue.SubmitItem) error {
	to, err := s.keys.ring.EncryptionKey(it.Dest)
	if err != nil {
		return fmt.Errorf("seal payload of %s: %w", it.ID, err)
	}
	env, err := s.seals.Seal(to, trust.Binding{ID: it.ID, Origin: s.site, Dest: it.Dest}, it.Payload)
	if err != nil {
		return fmt.Errorf("seal payload of %s: %w", it.ID, err)
	}
	it.Payload = env
	it.Flags |= queue.FlagSealed
	return nil
}

// open returns the plaintext of inbox message m, or an error naming why
// its envelope does not open (never the envelope's bytes). A message
// without FlagSealed was received before payloads were sealed, or is an
// expiry notice this site put into its own inbox (queue.FlagNotice,
// origin this site: it never travels): its payload is served as stored.
func (s *sealer) open(m *queue.Message) ([]byte, error) {
	if m.Flags&queue.FlagSealed == 0 {
		return m.Payload, nil
	}
	pt, err := s.opens.Open(trust.Binding{ID: m.ID, Origin: m.Origin, Dest: m.Dest}, m.Payload)
	if err == nil {
		return pt, nil
	}
	s.mu.Lock()
	_, known := s.bad[m.ID]
	if !known && len(s.bad) < maxUndecryptable {
		s.bad[m.ID] = err.Error()
	}
	s.mu.Unlock()
	if !known {
		s.failures.WithLabelValues("read").Inc()
		s.log.Error("ALARM: inbox payload does not decrypt; not served", "id", m.ID, "from", m.Origin, "seq", m.Seq, "err", err)
	}
	return nil, fmt.Errorf("payload does not open: %w", err)
}

// checkInbound refuses an inbound batch holding a payload this site could
// not open: not sealed, not an envelope, or sealed to a key this site does
// not hold (its current and old_kem_keys). Tombstones carry no payload.
// It does not decrypt (a client's read does); the error wraps
// queue.ErrInvalid.
func (s *sealer) checkInbound(msgs []queue.Message) error {
	for i := range msgs {
		m := &msgs[i]
		if m.Tombstone() {
			continue
		}
		err := s.inboundErr(m)
		if err == nil {
			continue
		}
		s.failures.WithLabelValues("receive").Inc()
		s.log.Error("ALARM: refusing an inbound batch: a payload this site cannot open", "from", m.Origin, "id", m.ID, "seq", m.Seq, "err", err)
		kind := queue.ErrInvalid
		if errors.Is(err, ErrUnsealable) { // its own code: not a refused signature
			kind = ErrUnsealable
		}
		return fmt.Errorf("%w: message %q (seq %d): %v", kind, m.ID, m.Seq, err)
	}
	return nil
}

func (s *sealer) inboundErr(m *queue.Message) error {
	if m.Flags&queue.FlagSealed == 0 {
		return fmt.Errorf("payload is not sealed (site %s accepts only payloads sealed to its key)", s.site)
	}
	e, err := trust.ParseEnvelope(m.Payload)
	if err != nil {
		return err
	}
	for _, k := range s.keys.dec {
		if k.ID() == e.KeyID {
			return nil
		}
	}
	return fmt.Errorf("%w: payload is sealed to key %s, which site %s does not hold (kem_key, old_kem_keys)", ErrUnsealable, e.KeyID, s.site)
}

// alarms words the unread inbox messages whose payloads do not open; a
// message read (acknowledged) or purged since is forgotten.
func (s *sealer) alarms() []string {
	s.mu.Lock()
	bad := make(map[string]string, len(s.bad))
	for id, why := range s.bad {
		bad[id] = why
	}
	s.mu.Unlock()
	var out []string
	for id, why := range bad {
		st, err := s.store.LookupInbound(id)
		if errors.Is(err, queue.ErrNotFound) || (err == nil && st.State != queue.Delivered) {
			s.mu.Lock()
			delete(s.bad, id)
			s.mu.Unlock()
			continue
		}
		out = append(out, fmt.Sprintf("inbox message %s does not decrypt and is not served: %s (add the key it is sealed to as an old_kem_key and restart, or acknowledge it: POST /v1/inbox/ack)", id, why))
	}
	sort.Strings(out)
	return out
}

// payloadInfo is what a status shows of m's payload: the plaintext's size
// and SHA-256 (hex), read from a sealed payload's envelope; an expired
// message has none ("").
func payloadInfo(m *queue.Message) (size int, sum string) {
	if m.Tombstone() {
		return 0, ""
	}
	if m.Flags&queue.FlagSealed != 0 {
		e, err := trust.ParseEnvelope(m.Payload)
		if err != nil {
			return 0, ""
		}
		return trust.PlaintextLen(len(m.Payload)), hex.EncodeToString(e.PlaintextHash[:])
	}
	return len(m.Payload), plainSum(m.Payload)
}

// plainSum is the SHA-256 (hex) of a plaintext payload.
func plainSum(p []byte) string {
	h := sha256.Sum256(p)
	return hex.EncodeToString(h[:])
}
