package trust

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// TestObjectiveChecks: the objective is a note when it agrees with the
// signed times, and a failure naming the disagreement when it does not.
func TestObjectiveChecks(t *testing.T) {
	const t0 = int64(1_700_000_000_000_000_000)
	m := &queue.Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: queue.Flash, Seq: 1, SubmittedAt: t0}
	bundle := func(o *BundleObjective) *Bundle {
		return &Bundle{Version: BundleVersion, Message: BundleMessage{ID: m.ID, Origin: m.Origin, Dest: m.Dest,
			Precedence: m.Precedence, Seq: m.Seq, SubmittedAt: m.SubmittedAt}, Objective: o}
	}
	late := NewObjective(m, 2*time.Second, t0+3e9)
	if late.Met == nil || *late.Met || late.Due != t0+2e9 || late.ReadWithin != "2s" {
		t.Fatalf("NewObjective, read late = %+v", late)
	}
	if o := NewObjective(m, 2*time.Second, 0); o.Met != nil {
		t.Fatalf("NewObjective, unread = %+v", o)
	}
	for _, tc := range []struct {
		name   string
		o      *BundleObjective
		readAt int64
		proven bool
		want   string // in Detail, or in Err when fail
		fail   bool
	}{
		{"missed, proven", late, t0 + 3e9, true, "missed (read", false},
		{"met, stated", NewObjective(m, 5*time.Second, t0+3e9), 0, false, "met as the site states", false},
		{"unread", NewObjective(m, 5*time.Second, 0), 0, false, "not read yet", false},
		{"met contradicts the receipt", NewObjective(m, 5*time.Second, t0+3e9), t0 + 6e9, true, "signed read receipt says", true},
		{"due moved", &BundleObjective{Precedence: queue.Flash, ReadWithin: "2s", Due: t0 + 9e9}, 0, false, "is not submitted_at plus 2s", true},
		{"other precedence", &BundleObjective{Precedence: queue.Routine, ReadWithin: "2s", Due: t0 + 2e9}, 0, false, "precedence routine", true},
		{"bad duration", &BundleObjective{Precedence: queue.Flash, ReadWithin: "-2s", Due: t0 - 2e9}, 0, false, "not a positive Go duration", true},
	} {
		c := bundle(tc.o).checkObjective(tc.readAt, tc.proven)
		switch {
		case tc.fail && (c.Err == nil || !errors.Is(c.Err, ErrMalformed) || !strings.Contains(c.Err.Error(), tc.want) || c.Note):
			t.Errorf("%s: %+v, want a failure with %q", tc.name, c, tc.want)
		case !tc.fail && (c.Err != nil || !c.Note || !strings.Contains(c.Detail, tc.want) || !strings.Contains(c.Detail, "not signed")):
			t.Errorf("%s: %+v, want a note with %q", tc.name, c, tc.want)
		}
	}
	// The objective reads back strictly: its keys are a bundle's.
	data, err := json.Marshal(bundle(late))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(data)
	if err != nil || b.Objective == nil || *b.Objective.Met || b.Objective.Due != late.Due {
		t.Fatalf("ParseBundle: %+v, %v", b, err)
	}
	if _, err := ParseBundle([]byte(strings.Replace(string(data), `"read_within"`, `"Read_Within"`, 1))); err == nil {
		t.Fatal("a misspelt objective key parsed")
	}
}

// TestObjectiveIgnoresRefusal: a refusal receipt proves that the
// destination refused the message, not that anyone read it: its time
// never makes an objective "met (read ...)" by a signed receipt, nor
// contradicts the site's statement.
func TestObjectiveIgnoresRefusal(t *testing.T) {
	e := newLabEvidenceRefused(t, "mailbox nosuch does not exist")
	refusedAt := e.status.RefusedAt
	for _, met := range []bool{true, false} {
		b := e.bundle(t)
		if b.Proofs[len(b.Proofs)-1].Receipt.Refused == "" {
			t.Fatal("the lab's read proof is not a refusal")
		}
		// A site stating Met (the daemon states none for a refused
		// message) from the refusal's time; due after it.
		b.Objective = NewObjective(&e.status.Message, time.Hour, refusedAt)
		*b.Objective.Met = met
		r, err := VerifyBundle(b, e.ring)
		if err != nil {
			t.Fatalf("met %v: %v", met, err)
		}
		var c *Check
		for i := range r.Checks {
			if r.Checks[i].What == "objective" {
				c = &r.Checks[i]
			}
		}
		if c == nil || c.Err != nil || !c.Note || strings.Contains(c.Detail, "by the signed read receipt") || !strings.Contains(c.Detail, "no signed read receipt here") {
			t.Fatalf("met %v: objective check %+v, want the site's statement without a signed read", met, c)
		}
	}
}
