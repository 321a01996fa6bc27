package stix

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzValidate checks that Validate never panics and that what it accepts
// is valid JSON. It is seeded with the test bundles and the refused cases'
// shapes; go test runs the seeds, go test -fuzz=FuzzValidate explores.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(bundleOf(spec()...))
	f.Add(bundleOf(`{"type": "x-a", "id": "x-a--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "granular_markings": [{"lang": "en", "selectors": ["x_l.[0].b"]}], "x_l": [{"b": 1}]}`))
	f.Add(bundleOf(`{"type": "location", "spec_version": "2.1", "id": "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64", "created": "2016-04-06T20:03:00.000Z", "modified": "2016-04-06T20:03:00.000Z", "latitude": 48.8566, "longitude": 2.3522}`))
	f.Add([]byte(`{"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[[[[[[]]]]]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Validate(b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if err != nil {
			_ = err.Error()
		}
	})
}
