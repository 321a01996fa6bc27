package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/internal/stix"
	"github.com/hotline-link/hotline/queue"
)

// sender is the core of a submission, shared by the socket API's submit
// and the spool directories (spool_out.go): it checks the payload against
// its type (checkPayload), answers a known idempotency key without a
// commit, checks a new message against the destination's mailbox list
// (when known), gives it an id, seals its payload to the destination and
// commits it through the site's group commit, or holds it when its
// mailbox waits for two-person release. Checks that every submission
// must pass, whoever makes it, belong in send; the caller's rights and
// the request's form are its caller's. Safe for concurrent use.
type sender struct {
	site, node string
	timeout    time.Duration // submit_timeout: a commit's bound
	store      *queue.Store
	seal       *sealer
	commit     *committer
	remote     *remoteMailboxes         // the other sites' mailbox lists (mailbox_exchange.go)
	holds      func(string) bool        // Config.holds: the sending mailbox holds for release (release.go)
	latency    *prometheus.HistogramVec // hotline_submit_duration_seconds by destination
}

// errRefused is the kind of a submission the site's state machine refused
// (a *refusal; errors.Is also matches queue.ErrKeyConflict and
// queue.ErrResyncing when it is one of those).
var errRefused = errors.New("submission refused")

// refusal is the state machine's reason for refusing a submission
// (queue.SubmitResult.Err). Nothing was stored.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func (r *refusal) Is(target error) bool {
	switch target {
	case errRefused:
		return true
	case queue.ErrKeyConflict:
		return r.reason == queue.ErrKeyConflict.Error()
	case queue.ErrResyncing:
		return strings.HasPrefix(r.reason, queue.ErrResyncing.Error())
	}
	return false
}

// errInvalidPayload is the kind of a payload that is not what its type
// says (a *payloadError, checkPayload). Nothing was stored.
var errInvalidPayload = errors.New("invalid payload")

// payloadError is why a payload is not what its type says, or is too
// large to be validated (tooLarge).
type payloadError struct {
	msg      string
	tooLarge bool
}

func (e *payloadError) Error() string        { return e.msg }
func (e *payloadError) Is(target error) bool { return target == errInvalidPayload }

// STIX validation's bounds: a bundle's parse holds several times its size
// in memory (internal/stix documents how much), so bundles are validated
// one at a time per process and are at most maxSTIXSize bytes.
const maxSTIXSize = 4 << 20

var stixSlots = make(chan struct{}, 1)

// checkPayload refuses a payload its media type's validator refuses (a
// STIX 2.1 bundle, internal/stix) with a *payloadError naming the object
// and property, or one too large to validate; ctx ends its wait for the
// validator.
func checkPayload(ctx context.Context, mtype string, payload []byte) error {
	if !stix.IsMediaType(mtype) {
		return nil
	}
	if len(payload) > maxSTIXSize {
		return &payloadError{tooLarge: true, msg: fmt.Sprintf("a %s payload is validated before it is stored, and may be at most %d bytes (this one is %d): split the bundle", stix.MediaType, maxSTIXSize, len(payload))}
	}
	select {
	case stixSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := stix.Validate(payload)
	<-stixSlots
	if err != nil {
		return &payloadError{msg: fmt.Sprintf("type %s: the payload is not a valid STIX 2.1 bundle: %v", stix.MediaType, err)}
	}
	return nil
}

// mailboxRefusal is a submission refused at the origin because the
// destination's mailbox list (as that site last sent it) has no such
// mailbox or does not take the type: code is the API's error code.
// Nothing was stored.
type mailboxRefusal struct{ code, msg string }

func (e *mailboxRefusal) Error() string { return e.msg }

// commitError is a commit that failed or whose outcome is unknown (no
// quorum, deadline, shutting down): the message may have been stored
// under ID after all; a retry with the same key is safe. Unwrap gives the
// commit path's error.
type commitError struct {
	ID  string
	err error
}

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// send commits item (its ID is set here; Payload is the plaintext, which
// send replaces with its envelope), submitted by `by` (the audit actor a
// held message records), and returns the result: Existing when item.Key
// names the same submission already; Seq 0 when it is held for release.
// ctx bounds the wait together with submit_timeout. Errors:
// errInvalidPayload (wrapped), a *mailboxRefusal, a *refusal
// (errRefused), a *commitError, or the sealer's error.
func (s *sender) send(ctx context.Context, item queue.SubmitItem, by queue.Actor) (queue.SubmitResult, error) {
	if err := checkPayload(ctx, item.Type, item.Payload); err != nil {
		return queue.SubmitResult{}, err
	}
	// A known key with the same content is answered without a commit, so a
	// retry succeeds even while the site has no quorum.
	if item.Key != "" {
		if st, err := s.store.LookupKey(item.Key); err == nil && queue.SameSubmission(st, &item) {
			return queue.SubmitResult{ID: st.Message.ID, Seq: st.Message.Seq, Existing: true}, nil
		}
	}
	// A new message must fit the destination's mailbox list, when known
	// (a stored one, retried, is answered as stored).
	if code, msg := s.remote.refuse(item.Dest, item.Mailbox, item.Type); code != "" { // mailbox_exchange.go
		return queue.SubmitResult{}, &mailboxRefusal{code: code, msg: msg}
	}
	start := time.Now()
	id, err := uuid.NewV7()
	if err != nil {
		return queue.SubmitResult{}, err
	}
	item.ID = id.String()
	if err := s.seal.seal(&item); err != nil {
		return queue.SubmitResult{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	var res queue.SubmitResult
	if s.holds(item.From) {
		res, err = s.hold(cctx, item, by)
	} else {
		res, err = s.commit.submit(cctx, item)
	}
	cancel()
	if errors.Is(err, errRefused) {
		return res, err
	}
	if err != nil {
		return res, &commitError{ID: item.ID, err: err}
	}
	if res.Err != "" {
		return res, &refusal{reason: res.Err}
	}
	s.latency.WithLabelValues(item.Dest).Observe(time.Since(start).Seconds())
	return res, nil
}

// hold commits item as held, submitted by `by` (two-person release,
// release.go). It bypasses group commit: held messages are few, and the
// command carries its submitter.
func (s *sender) hold(ctx context.Context, item queue.SubmitItem, by queue.Actor) (queue.SubmitResult, error) {
	cmd := &queue.Command{Op: queue.OpSubmit, Time: time.Now().UnixNano(),
		Submit:  &queue.Submit{Origin: s.site, Items: []queue.SubmitItem{item}},
		Release: &queue.Release{By: by, Node: s.node}}
	res, err := s.commit.propose(ctx, cmd)
	if err != nil {
		return queue.SubmitResult{}, err
	}
	if res.Err != "" || len(res.Submit) != 1 {
		return queue.SubmitResult{}, &refusal{reason: "hold: " + res.Err}
	}
	return res.Submit[0], nil
}

// sendErrorText names a failed send for a person (a spool's .error file,
// a log line).
func sendErrorText(err error) string {
	var ce *commitError
	switch {
	case errors.Is(err, queue.ErrKeyConflict):
		return "the idempotency key was already used for a different message (destination, precedence, type or content differ)"
	case errors.As(err, &ce):
		return fmt.Sprintf("not committed (may be stored as %s): %v", ce.ID, ce.err)
	}
	return err.Error()
}
