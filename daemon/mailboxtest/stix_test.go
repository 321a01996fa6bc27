package mailboxtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

const stixType = "application/stix+json;version=2.1"

// TestMailboxSTIX: the origin takes a valid STIX 2.1 bundle and carries
// its type to the destination's inbox; it refuses the specification's
// invalid examples (no spec_version, a malformed id, a bad timestamp)
// with invalid_payload naming the object and the property, and stores
// nothing of them (they take no sequence number).
func TestMailboxSTIX(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a two-site lab")
	}
	valid, err := os.ReadFile(filepath.Join(clustertest.ModuleRoot(t), "internal", "stix", "testdata", "valid-bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	lab := clustertest.Start(t)
	alpha, bravo := lab.Client("alpha-1"), lab.Client("bravo-1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	indicator := `{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",` +
		`"created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","name":"Poison Ivy Malware",` +
		`"pattern":"[ file:hashes.'SHA-256' = '4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877' ]",` +
		`"pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z"}`
	bundle := func(obj string) []byte {
		return []byte(`{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[` + obj + `]}`)
	}
	for _, tc := range []struct {
		name, payload, want string
	}{
		{"no spec_version", strings.Replace(indicator, `"spec_version":"2.1",`, "", 1), `objects[0] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): "spec_version": required property missing`},
		{"malformed id", strings.Replace(indicator, "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "indicator--123", 1), `objects[0]`},
		{"bad timestamp", strings.Replace(indicator, `"created":"2016-04-06T20:03:48.000Z"`, `"created":"2016-04-06T20:03:48+02:00"`, 1), `"created"`},
	} {
		_, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo", Type: stixType, Key: "stix-" + tc.name, Payload: bundle(tc.payload)})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != client.CodeInvalidPayload || !strings.Contains(ae.Message, tc.want) {
			t.Fatalf("%s: submit = %v; want 400 %s naming %s", tc.name, err, client.CodeInvalidPayload, tc.want)
		}
		if tc.name == "malformed id" && !strings.Contains(ae.Message, `"id"`) {
			t.Fatalf("%s: %q does not name the id property", tc.name, ae.Message)
		}
	}
	// A spelling mime cannot parse is refused, not carried unvalidated.
	for _, bad := range []string{`application/stix+json;version="2.1`, `application/stix+json;version=2.1"`, "application/stix+json;version"} {
		_, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo", Type: bad, Payload: bundle(indicator)})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != client.CodeBadRequest || !strings.Contains(ae.Message, "type:") {
			t.Fatalf("type %q: submit = %v; want 400 bad_request naming the type", bad, err)
		}
	}
	m, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo", Type: "application/STIX+json; version=\"2.1\"", Payload: valid, Wait: "delivered"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 1 || m.Type != "application/stix+json; version=2.1" {
		t.Fatalf("valid bundle stored as seq %d type %q; want seq 1 (the refused ones took none), its type in its one spelling", m.Seq, m.Type)
	}
	in, err := bravo.ReadInbox(ctx, client.InboxRequest{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Messages) != 1 || in.Messages[0].ID != m.ID || !bytes.Equal(in.Messages[0].Payload, valid) || in.Messages[0].Type != m.Type {
		t.Fatalf("bravo's inbox: %+v; want the one valid bundle with its type", in.Messages)
	}
}
