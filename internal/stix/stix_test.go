package stix

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// The objects below are the STIX 2.1 specification's examples (§4.7
// indicator with its relationship and malware, §4.5 identity, §4.16
// report); each refused case below breaks one of them in one way.
const (
	specIdentity = `{
      "type": "identity",
      "spec_version": "2.1",
      "id": "identity--023d105b-752e-4e3c-941c-7d3f3cb15e9e",
      "created": "2016-04-06T20:03:00.000Z",
      "modified": "2016-04-06T20:03:00.000Z",
      "name": "John Smith",
      "identity_class": "individual"
    }`
	specIndicator = `{
      "type": "indicator",
      "spec_version": "2.1",
      "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
      "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
      "created": "2016-04-06T20:03:48.000Z",
      "modified": "2016-04-06T20:03:48.000Z",
      "indicator_types": ["malicious-activity"],
      "name": "Poison Ivy Malware",
      "description": "This file is part of Poison Ivy",
      "pattern": "[ file:hashes.'SHA-256' = '4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877' ]",
      "pattern_type": "stix",
      "valid_from": "2016-01-01T00:00:00Z"
    }`
	specRelationship = `{
      "type": "relationship",
      "spec_version": "2.1",
      "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad",
      "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
      "created": "2016-04-06T20:06:37.000Z",
      "modified": "2016-04-06T20:06:37.000Z",
      "relationship_type": "indicates",
      "source_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
      "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"
    }`
	specMalware = `{
      "type": "malware",
      "spec_version": "2.1",
      "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
      "is_family": true,
      "created": "2016-04-06T20:07:09.000Z",
      "modified": "2016-04-06T20:07:09.000Z",
      "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
      "name": "Poison Ivy",
      "malware_types": ["trojan"]
    }`
	specReport = `{
      "type": "report",
      "spec_version": "2.1",
      "id": "report--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3",
      "created_by_ref": "identity--a463ffb3-1bd9-4d94-b02d-74e4f1658283",
      "created": "2015-12-21T19:59:11.000Z",
      "modified": "2015-12-21T19:59:11.000Z",
      "name": "The Black Vine Cyberespionage Group",
      "description": "A simple report with an indicator and campaign",
      "published": "2016-01-20T17:00:00.000Z",
      "report_types": ["campaign"],
      "object_refs": [
        "indicator--26ffb872-1dd9-446e-b6f5-d58527e5b5d2",
        "campaign--83422c77-904c-4dc1-aff5-5c38f3a2c55c",
        "relationship--f82356ae-fe6c-437c-9c24-6b64314ae68a"
      ]
    }`
)

const (
	indicatorID = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
	bundleID    = "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d"
)

// bundleOf wraps objects in a bundle.
func bundleOf(objects ...string) []byte {
	return []byte(`{"type": "bundle", "id": "` + bundleID + `", "objects": [` + strings.Join(objects, ",\n") + "]}")
}

// spec is a valid bundle of the specification's examples; the indicator
// is objects[1].
func spec() []string {
	return []string{specIdentity, specIndicator, specRelationship, specMalware, specReport}
}

// edit returns obj with old replaced by new, failing the test if old is
// not there.
func edit(t *testing.T, obj, old, new string) string {
	t.Helper()
	if !strings.Contains(obj, old) {
		t.Fatalf("test bug: %q not in %s", old, obj)
	}
	return strings.Replace(obj, old, new, 1)
}

// drop removes the line holding key from obj.
func drop(t *testing.T, obj, key string) string {
	t.Helper()
	lines := strings.Split(obj, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), `"`+key+`"`) {
			return strings.Join(append(lines[:i:i], lines[i+1:]...), "\n")
		}
	}
	t.Fatalf("test bug: %q not in %s", key, obj)
	return ""
}

// cut returns b up to the end of the first occurrence of s.
func cut(b []byte, s string) []byte {
	return b[:bytes.Index(b, []byte(s))+len(s)]
}

// withIndicator is the spec bundle with objects[1] replaced.
func withIndicator(ind string) []byte {
	objs := spec()
	objs[1] = ind
	return bundleOf(objs...)
}

func TestValidBundles(t *testing.T) {
	files, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if !strings.HasPrefix(f.Name(), "valid-") {
			continue
		}
		b, err := os.ReadFile("testdata/" + f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", f.Name(), err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no testdata/valid-*.json")
	}
	for name, b := range map[string][]byte{
		"spec examples":                             bundleOf(spec()...),
		"bundle without objects":                    []byte(`{"type":"bundle","id":"` + bundleID + `"}`),
		"spec_version 2.1 on the bundle, tolerated": []byte(`{"type":"bundle","id":"` + bundleID + `","spec_version":"2.1"}`),
		"white space around":                        append(append([]byte(" \n\t"), bundleOf(spec()...)...), "\r\n "...),
		"custom type and custom properties": bundleOf(`{"type": "x-acme-widget", "id": "x-acme-widget--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c",
			"x_acme_colour": "blue", "x_acme_sizes": [1, 2, 3], "x_acme_nested": {"a": {"b": null}}}`),
		"malware instance without name": bundleOf(edit(t, drop(t, specMalware, "name"), `"is_family": true`, `"is_family": false`)),
		"upper-case UUID":               bundleOf(edit(t, specIndicator, indicatorID, "indicator--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F")),
		"observed-data with deprecated objects": bundleOf(`{"type": "observed-data", "spec_version": "2.1",
			"id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
			"created": "2016-04-06T19:58:16.000Z", "modified": "2016-04-06T19:58:16.000Z",
			"first_observed": "2015-12-21T19:00:00Z", "last_observed": "2015-12-21T19:00:00Z", "number_observed": 1,
			"objects": {"0": {"type": "ipv4-addr", "value": "198.51.100.2"}, "1": {"type": "network-traffic", "dst_ref": "0"}}}`),
		"granular selectors into lists": bundleOf(edit(t, specIndicator, `"valid_from"`,
			`"granular_markings": [{"marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
			"selectors": ["indicator_types.[0]", "description", "indicator_types"]}], "valid_from"`)),
		"timestamps with nanoseconds and beyond": bundleOf(edit(t, edit(t, specIndicator,
			`"created": "2016-04-06T20:03:48.000Z"`, `"created": "2016-04-06T20:03:48.123456789Z"`),
			`"modified": "2016-04-06T20:03:48.000Z"`, `"modified": "2016-04-06T20:03:48.1234567891Z"`)),
		"network traffic": bundleOf(`{"type": "network-traffic", "id": "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d",
			"src_ref": "ipv4-addr--4d22aae0-2bf9-5427-8819-e4f6abf20a53", "dst_port": 80, "protocols": ["ipv4", "tcp"],
			"extensions": {"http-request-ext": {"request_method": "get", "message_body_data_ref": "artifact--cb37bcf8-9846-5ab4-8662-75c1bf6e63ee"}}}`),
		"email with parts": bundleOf(`{"type": "email-message", "spec_version": "2.1", "id": "email-message--cf9b4b7f-14c8-5955-8065-020e0316b559",
			"is_multipart": true, "body_multipart": [{"content_type": "text/plain; charset=utf-8", "body": "Cats are funny!"},
			{"content_type": "image/png", "body_raw_ref": "artifact--4cce66f8-6eaa-53cb-85d5-3a85fca3a6c5"}]}`),
		"artifact with payload": bundleOf(`{"type": "artifact", "id": "artifact--a785c567-cc53-52a1-abeb-026bb7ddf8ba",
			"mime_type": "image/jpeg", "payload_bin": "iVBORw0KGgoAAAANSUhEUgAAADI="}`),
	} {
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRefused(t *testing.T) {
	deep := `{"type": "x-deep", "id": "x-deep--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "x_deep": ` +
		strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}"
	for _, c := range []struct {
		name     string
		payload  []byte
		object   int
		id       string
		property string
		problem  string // a part of the problem
	}{
		// The cases the issue names.
		{"missing spec_version", withIndicator(drop(t, specIndicator, "spec_version")),
			1, indicatorID, "spec_version", "required property missing"},
		{"malformed id", withIndicator(edit(t, specIndicator, indicatorID, "indicator--123")),
			1, "", "id", `must be an identifier <type>--<UUID>, got "indicator--123"`},
		{"id of another type", withIndicator(edit(t, specIndicator, indicatorID, "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")),
			1, "malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "id", `does not begin with the object's type "indicator"`},
		{"timestamp with an offset", withIndicator(edit(t, specIndicator, "2016-04-06T20:03:48.000Z\",\n      \"modified", "2016-04-06T20:03:48+02:00\",\n      \"modified")),
			1, indicatorID, "created", `must be a timestamp YYYY-MM-DDTHH:MM:SS[.s+]Z (RFC 3339, UTC), got "2016-04-06T20:03:48+02:00"`},
		{"timestamp without Z", withIndicator(edit(t, specIndicator, `"valid_from": "2016-01-01T00:00:00Z"`, `"valid_from": "2016-01-01T00:00:00"`)),
			1, indicatorID, "valid_from", "must be a timestamp"},
		{"date only", withIndicator(edit(t, specIndicator, `"valid_from": "2016-01-01T00:00:00Z"`, `"valid_from": "2016-01-01"`)),
			1, indicatorID, "valid_from", `got "2016-01-01"`},
		{"missing required property", withIndicator(drop(t, specIndicator, "pattern")),
			1, indicatorID, "pattern", "required property missing"},
		{"ref to a non-identifier", bundleOf(specIdentity, specIndicator, edit(t, specRelationship, `"target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"`, `"target_ref": "Poison Ivy"`)),
			2, "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad", "target_ref", `must be an identifier <type>--<UUID>, got "Poison Ivy"`},
		{"trailing data", append(bundleOf(spec()...), " {}"...),
			-1, "", "", "trailing data after the bundle"},
		{"invalid JSON", withIndicator(edit(t, specIndicator, `"name": "Poison Ivy Malware",`, `"name": "Poison Ivy Malware"`)),
			1, indicatorID, "", `invalid JSON: unexpected character '"'`},
		{"deep nesting", bundleOf(specIdentity, deep),
			1, "x-deep--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "x_deep" + strings.Repeat("[0]", MaxDepth-3), "nesting deeper than 64 levels"},

		// JSON.
		{"empty payload", nil, -1, "", "", "invalid JSON: unexpected end of input (at byte 0)"},
		{"invalid UTF-8", withIndicator(edit(t, specIndicator, "Poison Ivy Malware", "Poison \xff Malware")),
			1, indicatorID, "name", "invalid UTF-8 in string"},
		{"duplicate key", withIndicator(edit(t, specIndicator, `"pattern_type": "stix"`, `"pattern_type": "stix", "name": "again"`)),
			1, indicatorID, "name", `duplicate key "name"`},
		{"duplicate key spelt with an escape", withIndicator(edit(t, specIndicator, `"pattern_type": "stix"`, `"pattern_type": "stix", "n\u0061me": "again"`)),
			1, indicatorID, "name", `duplicate key "name"`},
		{"unterminated", cut(bundleOf(spec()...), `"2016-04-06T20:03:00`), 0, "identity--023d105b-752e-4e3c-941c-7d3f3cb15e9e", "created",
			"invalid JSON: unterminated string"},

		// The bundle.
		{"an object, not a bundle", []byte(specIndicator), -1, "", "type", `must be "bundle", got "indicator"`},
		{"a list, not a bundle", []byte("[" + specIndicator + "]"), -1, "", "", "must be a JSON object (a STIX bundle), got a JSON array"},
		{"STIX 2.0 bundle", []byte(`{"type":"bundle","id":"` + bundleID + `","spec_version":"2.0","objects":[` + specIndicator + `]}`),
			-1, bundleID, "spec_version", "is this STIX 2.0?"},
		{"bundle id of another type", []byte(`{"type":"bundle","id":"` + indicatorID + `"}`), -1, "", "id", "must be an identifier bundle--<UUID>"},
		{"empty objects", []byte(`{"type":"bundle","id":"` + bundleID + `","objects":[]}`), -1, bundleID, "objects", "must not be empty"},
		{"bundle in a bundle", bundleOf(`{"type":"bundle","id":"` + bundleID + `"}`), 0, bundleID, "type", "a bundle is not a STIX object"},
		{"object not an object", bundleOf(specIdentity, `"indicator"`), 1, "", "", "must be a JSON object (a STIX object), got a JSON string"},

		// Every object.
		{"type of one letter", bundleOf(`{"type":"x","id":"x--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c"}`), 0, "", "type", "must be 3 to 250 characters long"},
		{"type with --", bundleOf(`{"type":"x--y","id":"x--y--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c"}`), 0, "", "type", `must not contain "--"`},
		{"UUID of variant 0", withIndicator(edit(t, specIndicator, indicatorID, "indicator--8e2e2d2b-17d4-4cbf-138f-98ee46b3cd3f")),
			1, "", "id", "is not an RFC 4122 UUID (variant digit 1)"},
		{"the spec's typo file-<UUID> (§3.9.1)", bundleOf(`{"type": "file", "id": "file-1389b98d-a3d3-5190-a996-716fd444059a", "name": "quêry.dll"}`),
			0, "", "id", "must be an identifier <type>--<UUID>"},
		{"spec_version 2.0", withIndicator(edit(t, specIndicator, `"spec_version": "2.1"`, `"spec_version": "2.0"`)),
			1, indicatorID, "spec_version", `must be "2.1", got "2.0"`},
		{"created without milliseconds", withIndicator(edit(t, specIndicator, `"created": "2016-04-06T20:03:48.000Z"`, `"created": "2016-04-06T20:03:48Z"`)),
			1, indicatorID, "created", "must be precise to the millisecond"},
		{"February 30th", withIndicator(edit(t, specIndicator, `"valid_from": "2016-01-01T00:00:00Z"`, `"valid_from": "2016-02-30T00:00:00Z"`)),
			1, indicatorID, "valid_from", "is not a valid date and time"},
		{"modified before created", withIndicator(edit(t, specIndicator, `"modified": "2016-04-06T20:03:48.000Z"`, `"modified": "2016-04-06T20:03:47.999Z"`)),
			1, indicatorID, "modified", `must not be earlier than "created"`},
		{"created_by_ref to a malware", withIndicator(edit(t, specIndicator, "identity--f431f809", "malware--f431f809")),
			1, indicatorID, "created_by_ref", "must refer to an object of type identity"},
		{"empty list", withIndicator(edit(t, specIndicator, `["malicious-activity"]`, `[]`)),
			1, indicatorID, "indicator_types", "must not be an empty list"},
		{"empty dictionary in a custom property", withIndicator(edit(t, specIndicator, `"valid_from"`, `"x_acme": {"a": [{}]}, "valid_from"`)),
			1, indicatorID, "x_acme.a[0]", "must not be an empty dictionary"},
		{"confidence over 100", withIndicator(edit(t, specIndicator, `"valid_from"`, `"confidence": 101, "valid_from"`)),
			1, indicatorID, "confidence", "must be between 0 and 100, got 101"},
		{"confidence not an integer", withIndicator(edit(t, specIndicator, `"valid_from"`, `"confidence": 50.5, "valid_from"`)),
			1, indicatorID, "confidence", "must be an integer, got 50.5"},
		{"labels not strings", withIndicator(edit(t, specIndicator, `"valid_from"`, `"labels": ["a", 1], "valid_from"`)),
			1, indicatorID, "labels[1]", "must be a string, got a JSON number"},
		{"bad lang", withIndicator(edit(t, specIndicator, `"valid_from"`, `"lang": "english language", "valid_from"`)),
			1, indicatorID, "lang", "must be an RFC 5646 language tag"},
		{"external reference without source_name", withIndicator(edit(t, specIndicator, `"valid_from"`, `"external_references": [{"url": "https://example.com"}], "valid_from"`)),
			1, indicatorID, "external_references[0].source_name", "required property missing"},
		{"external reference with source_name only", withIndicator(edit(t, specIndicator, `"valid_from"`, `"external_references": [{"source_name": "capec"}], "valid_from"`)),
			1, indicatorID, "external_references[0]", `needs one of "description", "url" or "external_id"`},
		{"bad SHA-256", withIndicator(edit(t, specIndicator, `"valid_from"`, `"external_references": [{"source_name": "x", "url": "https://example.com", "hashes": {"SHA-256": "abc"}}], "valid_from"`)),
			1, indicatorID, "external_references[0].hashes.SHA-256", "must be 64 hex digits"},
		{"object marking to an identity", withIndicator(edit(t, specIndicator, `"valid_from"`, `"object_marking_refs": ["identity--f431f809-377b-45e0-aa1c-6a4751cae5ff"], "valid_from"`)),
			1, indicatorID, "object_marking_refs[0]", "must refer to an object of type marking-definition"},
		{"granular marking selecting nothing", withIndicator(edit(t, specIndicator, `"valid_from"`, `"granular_markings": [{"lang": "de", "selectors": ["indicator_types.[1]"]}], "valid_from"`)),
			1, indicatorID, "granular_markings[0].selectors[0]", `selector "indicator_types.[1]" selects nothing`},
		{"granular marking with both", withIndicator(edit(t, specIndicator, `"valid_from"`, `"granular_markings": [{"lang": "de", "marking_ref": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "selectors": ["name"]}], "valid_from"`)),
			1, indicatorID, "granular_markings[0].lang", `must not be present together with "marking_ref"`},
		{"extension definition without extension_type", withIndicator(edit(t, specIndicator, `"valid_from"`, `"extensions": {"extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e": {"rank": 5}}, "valid_from"`)),
			1, indicatorID, "extensions.extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e.extension_type", "required property missing"},
		{"ref inside an extension", withIndicator(edit(t, specIndicator, `"valid_from"`, `"extensions": {"x-ext": {"thing_ref": "thing"}}, "valid_from"`)),
			1, indicatorID, "extensions.x-ext.thing_ref", "must be an identifier"},
		{"defanged on an SDO", withIndicator(edit(t, specIndicator, `"valid_from"`, `"defanged": true, "valid_from"`)),
			1, indicatorID, "defanged", "is defined only for cyber-observable objects"},
		{"reserved name", withIndicator(edit(t, specIndicator, `"valid_from"`, `"severity": "high", "valid_from"`)),
			1, indicatorID, "severity", "reserved property name"},
		{"property name with capitals", withIndicator(edit(t, specIndicator, `"valid_from"`, `"xAcme": 1, "valid_from"`)),
			1, indicatorID, "xAcme", "property name must be 3 to 250 characters of a-z, 0-9 and _"},
		{"hex with capitals", withIndicator(edit(t, specIndicator, `"valid_from"`, `"x_flags_hex": "0A", "valid_from"`)),
			1, indicatorID, "x_flags_hex", "must be hex of 0-9 and a-f"},
		{"_enc without its property", bundleOf(`{"type": "file", "id": "file--1389b98d-a3d3-5190-a996-716fd444059a", "hashes": {"MD5": "3773a88f65a5e780c8dff9cdc3a056f3"}, "name_enc": "windows-1252"}`),
			0, "file--1389b98d-a3d3-5190-a996-716fd444059a", "name_enc", `must not be present without "name"`},
		{"custom object with a bad created", bundleOf(`{"type": "x-acme-widget", "id": "x-acme-widget--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "created": "yesterday"}`),
			0, "x-acme-widget--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "created", `got "yesterday"`},

		// Per type.
		{"the spec's own §8 bundle example (indicator without pattern_type)", []byte(`{
  "type": "bundle",
  "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
  "objects": [
    {
      "type": "indicator",
      "spec_version": "2.1",
      "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
      "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
      "created": "2016-04-29T14:09:00.000Z",
      "modified": "2016-04-29T14:09:00.000Z",
      "object_marking_refs": ["marking-definition--089a6ecb-cc15-43cc-9494-767639779123"],
      "name": "Poison Ivy Malware",
      "description": "This file is part of Poison Ivy",
      "pattern": "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']"
    }
  ]
}`), 0, indicatorID, "pattern_type", "required property missing"},
		{"valid_until not after valid_from", withIndicator(edit(t, specIndicator, `"valid_from": "2016-01-01T00:00:00Z"`, `"valid_from": "2016-01-01T00:00:00Z", "valid_until": "2016-01-01T00:00:00.000Z"`)),
			1, indicatorID, "valid_until", `must be later than "valid_from"`},
		{"malware family without name", bundleOf(drop(t, specMalware, "name")),
			0, "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "name", "required property missing (is_family is true)"},
		{"malware without is_family", bundleOf(drop(t, specMalware, "is_family")),
			0, "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "is_family", "required property missing"},
		{"report without object_refs", bundleOf(edit(t, specReport, `"object_refs"`, `"x_object_refs"`)),
			0, "report--84e4d88f-44ea-4bcd-bbf3-b2c1c320bcb3", "object_refs", "required property missing"},
		{"relationship to a marking definition", bundleOf(edit(t, specRelationship, "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da")),
			0, "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad", "target_ref", "must refer to an SDO or SCO, not a marking-definition"},
		{"relationship type with capitals", bundleOf(edit(t, specRelationship, `"indicates"`, `"Indicates"`)),
			0, "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad", "relationship_type", "must hold only a-z, 0-9 and -"},
		{"sighting of an SCO", bundleOf(`{"type": "sighting", "spec_version": "2.1", "id": "sighting--ee20065d-2555-424f-ad9e-0f8428623c75",
			"created": "2016-04-06T20:08:31.000Z", "modified": "2016-04-06T20:08:31.000Z",
			"sighting_of_ref": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4"}`),
			0, "sighting--ee20065d-2555-424f-ad9e-0f8428623c75", "sighting_of_ref", "must refer to an SDO, not a ipv4-addr"},
		{"location without a place", bundleOf(`{"type": "location", "spec_version": "2.1", "id": "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
			"created": "2016-04-06T20:03:00.000Z", "modified": "2016-04-06T20:03:00.000Z", "city": "Paris"}`),
			0, "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64", "", `needs one of "region", "country", or "latitude" and "longitude"`},
		{"latitude out of range", bundleOf(`{"type": "location", "spec_version": "2.1", "id": "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64",
			"created": "2016-04-06T20:03:00.000Z", "modified": "2016-04-06T20:03:00.000Z", "latitude": 91, "longitude": 0}`),
			0, "location--a6e9345f-5a15-4c29-8bb3-7dcc5d168d64", "latitude", "must be between -90 and 90, got 91"},
		{"observed data seen zero times", bundleOf(`{"type": "observed-data", "spec_version": "2.1", "id": "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf",
			"created": "2016-04-06T19:58:16.000Z", "modified": "2016-04-06T19:58:16.000Z",
			"first_observed": "2015-12-21T19:00:00Z", "last_observed": "2016-04-06T19:58:16Z", "number_observed": 0,
			"object_refs": ["file--30038539-3eb6-44bc-a59e-d0d3fe84695a"]}`),
			0, "observed-data--b67d30ff-02ac-498a-92f9-32f845f448cf", "number_observed", "must be between 1 and 999999999, got 0"},
		{"opinion not in the enumeration", bundleOf(`{"type": "opinion", "spec_version": "2.1", "id": "opinion--b01efc25-77b4-4003-b18b-f6e24b5cd9f7",
			"created": "2016-05-02T12:17:27.000Z", "modified": "2016-05-02T12:17:27.000Z",
			"opinion": "maybe", "object_refs": ["relationship--16d2358f-3b0d-4c88-b047-0da2f7ed4471"]}`),
			0, "opinion--b01efc25-77b4-4003-b18b-f6e24b5cd9f7", "opinion", `must be one of strongly-disagree, disagree, neutral, agree, strongly-agree; got "maybe"`},
		{"a TLP marking of its own", bundleOf(`{"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd",
			"created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "definition": {"tlp": "green"}}`),
			0, "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd", "id", "a TLP marking must be the standard TLP:green definition"},
		{"a TLP level that is not one", bundleOf(`{"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd",
			"created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "definition": {"tlp": "clear"}}`),
			0, "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd", "definition.tlp", `must be one of white, green, amber, red; got "clear"`},
		{"marking without definition", bundleOf(`{"type": "marking-definition", "spec_version": "2.1", "id": "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd",
			"created": "2017-01-20T00:00:00.000Z", "definition_type": "statement"}`),
			0, "marking-definition--4a0042fe-8b88-40fe-9600-dfa128ce6fbd", "definition", "required property missing"},
		{"file without hashes or name", bundleOf(`{"type": "file", "id": "file--1389b98d-a3d3-5190-a996-716fd444059a", "size": 25537}`),
			0, "file--1389b98d-a3d3-5190-a996-716fd444059a", "", `needs one of "hashes" or "name"`},
		{"negative file size", bundleOf(`{"type": "file", "id": "file--1389b98d-a3d3-5190-a996-716fd444059a", "name": "a", "size": -1}`),
			0, "file--1389b98d-a3d3-5190-a996-716fd444059a", "size", "must be between 0 and"},
		{"ipv4-addr without value", bundleOf(`{"type": "ipv4-addr", "id": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4"}`),
			0, "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", "value", "required property missing"},
		{"artifact with both payload and url", bundleOf(`{"type": "artifact", "id": "artifact--a785c567-cc53-52a1-abeb-026bb7ddf8ba",
			"payload_bin": "iVBORw0KGgo=", "url": "https://example.com/a", "hashes": {"MD5": "3773a88f65a5e780c8dff9cdc3a056f3"}}`),
			0, "artifact--a785c567-cc53-52a1-abeb-026bb7ddf8ba", "url", `must not be present together with "payload_bin"`},
		{"the spec's elided payload_bin (§6.1)", bundleOf(`{"type": "artifact", "spec_version": "2.1", "id": "artifact--a785c567-cc53-52a1-abeb-026bb7ddf8ba",
			"mime_type": "image/jpeg", "payload_bin": "VBORw0KGgoAAAANSUhEUgAAADI== ..."}`),
			0, "artifact--a785c567-cc53-52a1-abeb-026bb7ddf8ba", "payload_bin", "must be base64"},
		{"email body with parts", bundleOf(`{"type": "email-message", "id": "email-message--cf9b4b7f-14c8-5955-8065-020e0316b559",
			"is_multipart": true, "body": "hello", "body_multipart": [{"body": "hello"}]}`),
			0, "email-message--cf9b4b7f-14c8-5955-8065-020e0316b559", "body", "must not be present when is_multipart is true"},
		{"network traffic without ends", bundleOf(`{"type": "network-traffic", "id": "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d", "protocols": ["tcp"]}`),
			0, "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d", "", `needs one of "src_ref" or "dst_ref"`},
		{"port out of range", bundleOf(`{"type": "network-traffic", "id": "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d", "protocols": ["tcp"],
			"dst_ref": "ipv4-addr--4d22aae0-2bf9-5427-8819-e4f6abf20a53", "dst_port": 65536}`),
			0, "network-traffic--2568d22a-8998-58eb-99ec-3c8ca74f527d", "dst_port", "must be between 0 and 65535"},
		{"extension definition with stray extension_properties", bundleOf(`{"id": "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e",
			"type": "extension-definition", "spec_version": "2.1", "name": "Extension Foo 1",
			"created": "2014-02-20T09:16:08.989000Z", "modified": "2014-02-20T09:16:08.989000Z",
			"created_by_ref": "identity--11b76a96-5d2b-45e0-8a5a-f6994f370731",
			"schema": "https://www.example.com/schema-foo-1/v1/", "version": "1.2.1",
			"extension_types": ["property-extension"], "extension_properties": ["rank"]}`),
			0, "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e", "extension_properties", "toplevel-property-extension"},
		{"first problem in document order", withIndicator(edit(t, edit(t, specIndicator, `"name": "Poison Ivy Malware"`, `"name": 7`),
			`"pattern_type": "stix"`, `"pattern_type": 8`)),
			1, indicatorID, "name", "must be a string, got a JSON number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.payload)
			if err == nil {
				t.Fatalf("accepted; want objects[%d] %q: %s", c.object, c.property, c.problem)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not a *Error: %T %v", err, err)
			}
			if e.Object != c.object || e.ID != c.id || e.Property != c.property || !strings.Contains(e.Problem, c.problem) {
				t.Errorf("got  %d %q %q %q\nwant %d %q %q ...%q...", e.Object, e.ID, e.Property, e.Problem, c.object, c.id, c.property, c.problem)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{Object: 3, ID: indicatorID, Property: "pattern", Problem: "required property missing"},
			`objects[3] (indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f): "pattern": required property missing`},
		{Error{Object: 0, Property: "id", Problem: "p"}, `objects[0]: "id": p`},
		{Error{Object: -1, Problem: "trailing data after the bundle (at byte 9)"}, "bundle: trailing data after the bundle (at byte 9)"},
		{Error{Object: -1, ID: bundleID, Property: "objects", Problem: "p"}, `bundle (` + bundleID + `): "objects": p`},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestIsMediaType(t *testing.T) {
	for t0, want := range map[string]bool{
		MediaType:                                  true,
		"application/stix+json; version=2.1":       true,
		"application/stix+json ;version=2.1":       true,
		"Application/STIX+JSON;Version=2.1":        true,
		`application/stix+json;version="2.1"`:      true,
		"application/stix+json":                    false,
		"application/stix+json;version=2.0":        false,
		"application/stix+json;version=2.1;x=y":    false,
		"application/taxii+json;version=2.1":       false,
		"application/json":                         false,
		"":                                         false,
		"application/stix+json;version=2.1;":       true, // mime ignores a trailing ';'
		"application/stix+json;version=2.1,text/x": false,
	} {
		if got := IsMediaType(t0); got != want {
			t.Errorf("IsMediaType(%q) = %v, want %v", t0, got, want)
		}
	}
}

// TestBounded feeds inputs built to make a careless validator slow or
// greedy: they must be answered, and quickly (go test's timeout and the
// race detector's slowness leave room; the point is linear, not fast).
func TestBounded(t *testing.T) {
	var b bytes.Buffer
	// 200,000 selectors into a list of 100,000 items.
	b.WriteString(`{"type": "x-big", "id": "x-big--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c", "x_list": [`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("0")
	}
	b.WriteString(`], "granular_markings": [{"lang": "en", "selectors": [`)
	for i := 0; i < 200000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"x_list.[99999]"`)
	}
	b.WriteString(`]}]}`)
	if err := Validate(bundleOf(b.String())); err != nil {
		t.Errorf("selectors: %v", err)
	}
	// An object of 100,000 members, and a lookup of each.
	b.Reset()
	b.WriteString(`{"type": "x-big", "id": "x-big--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c"`)
	for i := 0; i < 100000; i++ {
		b.WriteString(`, "x_p` + strings.Repeat("q", i%7) + itoa(i) + `": 1`)
	}
	b.WriteString(`, "granular_markings": [{"lang": "en", "selectors": [`)
	for i := 0; i < 100000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"x_p` + strings.Repeat("q", i%7) + itoa(i) + `"`)
	}
	b.WriteString(`]}]}`)
	if err := Validate(bundleOf(b.String())); err != nil {
		t.Errorf("members: %v", err)
	}
	// A duplicate among many members.
	b.Reset()
	b.WriteString(`{"type": "x-big", "id": "x-big--2f9a5b30-6b8e-4d8a-9b0c-3c4e5f6a7b8c"`)
	for i := 0; i < 1000; i++ {
		b.WriteString(`, "x_p` + itoa(i) + `": 1`)
	}
	b.WriteString(`, "x_p500": 2}`)
	var e *Error
	if err := Validate(bundleOf(b.String())); !errors.As(err, &e) || e.Property != "x_p500" || !strings.Contains(e.Problem, "duplicate key") {
		t.Errorf("duplicate among many: %v", err)
	}
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[n:])
		}
	}
}

// bigBundle repeats the objects of the valid test bundle until the
// bundle is at least size bytes.
func bigBundle(tb testing.TB, size int) []byte {
	raw, err := os.ReadFile("testdata/valid-bundle.json")
	if err != nil {
		tb.Fatal(err)
	}
	s := string(raw)
	start := strings.Index(s, `"objects": [`) + len(`"objects": [`)
	end := strings.LastIndex(s, "]")
	objs := s[start:end]
	var b strings.Builder
	b.WriteString(`{"type": "bundle", "id": "` + bundleID + `", "objects": [`)
	b.WriteString(objs)
	for b.Len() < size {
		b.WriteString(",")
		b.WriteString(objs)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func TestBigBundle(t *testing.T) {
	if err := Validate(bigBundle(t, 100<<10)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkValidate(b *testing.B) {
	payload := bigBundle(b, 100<<10)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Validate(payload); err != nil {
			b.Fatal(err)
		}
	}
}
