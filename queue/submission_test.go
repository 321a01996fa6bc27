package queue

import "testing"

// TestSameSubmissionIsOpSubmitsRule: SameSubmission answers exactly as
// OpSubmit does for an item under a stored key (a repeat, or
// ErrKeyConflict), before and after expiry removes the stored payload.
func TestSameSubmissionIsOpSubmitsRule(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	stored := SubmitItem{ID: "m1", Key: "order-42", Dest: "bravo", Precedence: Flash, Payload: []byte("hello"), ExpiresAt: t2}
	l.apply(t, s, submitCmd(t1, stored))
	variants := []struct {
		name string
		edit func(*SubmitItem)
		same bool
	}{
		{"same content, new id", func(it *SubmitItem) {}, true},
		{"same content, drill flag", func(it *SubmitItem) { it.Flags = FlagDrill }, true},
		{"other payload", func(it *SubmitItem) { it.Payload = []byte("hellO") }, false},
		{"empty payload", func(it *SubmitItem) { it.Payload = nil }, false},
		{"other destination", func(it *SubmitItem) { it.Dest = "charlie" }, false},
		{"other precedence", func(it *SubmitItem) { it.Precedence = Routine }, false},
	}
	for _, phase := range []string{"queued", "expired"} {
		if phase == "expired" {
			l.apply(t, s, expireCmd(t3))
			if st := mustStatus(t, s, "m1"); st.State != Expired || st.Message.Payload != nil {
				t.Fatalf("not expired: %+v", st)
			}
		}
		for i, v := range variants {
			it := stored
			it.ID = "retry"
			v.edit(&it)
			st, err := s.LookupKey(it.Key)
			if err != nil {
				t.Fatal(err)
			}
			if got := SameSubmission(st, &it); got != v.same {
				t.Errorf("%s, %s: SameSubmission = %v, want %v", phase, v.name, got, v.same)
			}
			it.ID = "retry-" + phase + string(rune('a'+i))
			res := l.apply(t, s, submitCmd(t4, it))[0].Submit[0]
			if applied := res.Existing && res.ID == "m1" && res.Err == ""; applied != v.same || (!v.same && res.Err != ErrKeyConflict.Error()) {
				t.Errorf("%s, %s: OpSubmit answered %+v; SameSubmission says %v", phase, v.name, res, v.same)
			}
		}
	}
	other := stored
	other.Key = "order-43"
	if st, _ := s.LookupKey("order-42"); SameSubmission(st, &other) {
		t.Error("an item with another key repeats the stored one")
	}
	if st := mustStatus(t, s, "m1"); SameSubmission(st, &SubmitItem{Dest: "bravo", Precedence: Flash, Payload: []byte("hello")}) {
		t.Error("an item without a key repeats a stored message")
	}
}

func TestStateAtLeast(t *testing.T) {
	states := []State{Queued, Delivered, Read, Expired, Held, Refused}
	// want[i][j]: states[i].AtLeast(states[j])
	want := [6][6]bool{
		{true, false, false, false, true, false},  // queued
		{true, true, false, false, true, false},   // delivered
		{true, true, true, false, true, false},    // read
		{true, false, false, true, true, false},   // expired
		{false, false, false, false, true, false}, // held
		{true, true, false, false, true, true},    // refused
	}
	for i, s := range states {
		for j, w := range states {
			if got := s.AtLeast(w); got != want[i][j] {
				t.Errorf("%s.AtLeast(%s) = %v, want %v", s, w, got, want[i][j])
			}
		}
		if State(0).AtLeast(s) || s.AtLeast(State(0)) || State(9).AtLeast(s) {
			t.Errorf("an unknown state compares with %s", s)
		}
	}
}
