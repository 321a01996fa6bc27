package stix

import "math"

// This file is the table of the object types this package knows, taken
// from the STIX 2.1 specification (OASIS Standard, with Errata 01):
// which properties each requires beyond type and id, how the properties
// it defines are checked, and the rules between them. A property a type
// does not list here is checked only by the common checks and by its
// name's suffix (_ref, _refs, _hex, _bin, _enc).

type class uint8

const (
	sdo  class = iota + 1 // domain object: spec_version, created, modified required
	sro                   // relationship object: as an SDO
	sco                   // cyber-observable: spec_version optional, no created/modified
	meta                  // meta object: its own common properties (typeSpec.common)
)

type typeSpec struct {
	class    class
	common   []string // meta objects: the common properties they require
	required []string // the type's own required properties
	props    map[string]check
	rules    func(o *object) bool
	all      []string // every required property but type and id, set by init
}

func init() {
	for _, t := range types {
		switch t.class {
		case sdo, sro:
			t.all = append([]string{"spec_version", "created", "modified"}, t.required...)
		case sco:
			t.all = t.required
		case meta:
			t.all = append(append([]string(nil), t.common...), t.required...)
		}
	}
}

// props merges check tables; later ones win.
type props = map[string]check

func with(base props, more props) props {
	m := make(props, len(base)+len(more))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range more {
		m[k] = v
	}
	return m
}

var (
	named      = props{"name": str, "description": str}
	seenProps  = props{"first_seen": ts, "last_seen": ts}
	anyInteger = integer(-maxInt, maxInt)
	nonNeg     = integer(0, maxInt)
)

// notEndpoint are the types a relationship may not point at (§5.1: its
// ends are SDOs or SCOs).
var notEndpoint = map[string]bool{
	"relationship": true, "sighting": true, "bundle": true,
	"language-content": true, "marking-definition": true, "extension-definition": true,
}

// notSDO are the types that are known not to be SDOs, for sighting_of_ref
// (§5.2). A type this package does not know may be a custom SDO.
var notSDO = map[string]bool{
	"relationship": true, "sighting": true, "bundle": true,
	"language-content": true, "marking-definition": true, "extension-definition": true,
	"artifact": true, "autonomous-system": true, "directory": true, "domain-name": true,
	"email-addr": true, "email-message": true, "file": true, "ipv4-addr": true,
	"ipv6-addr": true, "mac-addr": true, "mutex": true, "network-traffic": true,
	"process": true, "software": true, "url": true, "user-account": true,
	"windows-registry-key": true, "x509-certificate": true,
}

// tlpMarkings are the only TLP marking definitions STIX 2.1 permits
// (§7.2.1.4), by level.
var tlpMarkings = map[string]string{
	"white": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
	"green": "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
	"amber": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
	"red":   "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}

var types = map[string]*typeSpec{
	// §4 STIX Domain Objects.
	"attack-pattern": {class: sdo, required: []string{"name"},
		props: with(named, props{"aliases": strList, "kill_chain_phases": killChainPhases})},
	"campaign": {class: sdo, required: []string{"name"},
		props: with(with(named, seenProps), props{"aliases": strList, "objective": str}),
		rules: seen},
	"course-of-action": {class: sdo, required: []string{"name"}, props: named},
	"grouping": {class: sdo, required: []string{"context", "object_refs"},
		props: with(named, props{"context": str})},
	"identity": {class: sdo, required: []string{"name"},
		props: with(named, props{"roles": strList, "identity_class": str, "sectors": strList, "contact_information": str})},
	"incident": {class: sdo, required: []string{"name"}, props: named},
	"indicator": {class: sdo, required: []string{"pattern", "pattern_type", "valid_from"},
		props: with(named, props{"indicator_types": strList, "pattern": str, "pattern_type": str,
			"pattern_version": str, "valid_from": ts, "valid_until": ts, "kill_chain_phases": killChainPhases}),
		rules: func(o *object) bool { return o.order("valid_from", "valid_until", true) }},
	"infrastructure": {class: sdo, required: []string{"name"},
		props: with(with(named, seenProps), props{"infrastructure_types": strList, "aliases": strList, "kill_chain_phases": killChainPhases}),
		rules: seen},
	"intrusion-set": {class: sdo, required: []string{"name"},
		props: with(with(named, seenProps), props{"aliases": strList, "goals": strList, "resource_level": str,
			"primary_motivation": str, "secondary_motivations": strList}),
		rules: seen},
	"location": {class: sdo,
		props: with(named, props{"latitude": float(-90, 90), "longitude": float(-180, 180),
			"precision": float(0, math.MaxFloat64), "region": str, "country": str, "administrative_area": str,
			"city": str, "street_address": str, "postal_code": str}),
		rules: locationRules},
	"malware": {class: sdo, required: []string{"is_family"},
		props: with(with(named, seenProps), props{"malware_types": strList, "is_family": boolean, "aliases": strList,
			"kill_chain_phases": killChainPhases, "architecture_execution_envs": strList,
			"implementation_languages": strList, "capabilities": strList,
			"operating_system_refs": refs("software"), "sample_refs": refs("file", "artifact")}),
		rules: func(o *object) bool {
			if o.isTrue("is_family") && !o.has("name") {
				return o.bad("name", "required property missing (is_family is true)")
			}
			return seen(o)
		}},
	"malware-analysis": {class: sdo, required: []string{"product"},
		props: props{"product": str, "version": str, "host_vm_ref": ref("software"),
			"operating_system_ref": ref("software"), "installed_software_refs": refs("software"),
			"configuration_version": str, "modules": strList, "analysis_engine_version": str,
			"analysis_definition_version": str, "submitted": ts, "analysis_started": ts, "analysis_ended": ts,
			"result_name": str, "result": str, "sample_ref": ref("file", "artifact", "network-traffic")},
		rules: oneOf("result", "analysis_sco_refs")},
	"note": {class: sdo, required: []string{"content", "object_refs"},
		props: props{"abstract": str, "content": str, "authors": strList}},
	"observed-data": {class: sdo, required: []string{"first_observed", "last_observed", "number_observed"},
		props: props{"first_observed": ts, "last_observed": ts, "number_observed": integer(1, 999999999), "objects": dict},
		rules: observedDataRules},
	"opinion": {class: sdo, required: []string{"opinion", "object_refs"},
		props: props{"explanation": str, "authors": strList,
			"opinion": enum("strongly-disagree", "disagree", "neutral", "agree", "strongly-agree")}},
	"report": {class: sdo, required: []string{"name", "published", "object_refs"},
		props: with(named, props{"report_types": strList, "published": ts})},
	"threat-actor": {class: sdo, required: []string{"name"},
		props: with(with(named, seenProps), props{"threat_actor_types": strList, "aliases": strList, "roles": strList,
			"goals": strList, "sophistication": str, "resource_level": str, "primary_motivation": str,
			"secondary_motivations": strList, "personal_motivations": strList}),
		rules: seen},
	"tool": {class: sdo, required: []string{"name"},
		props: with(named, props{"tool_types": strList, "aliases": strList, "kill_chain_phases": killChainPhases, "tool_version": str})},
	"vulnerability": {class: sdo, required: []string{"name"}, props: named},

	// §5 STIX Relationship Objects.
	"relationship": {class: sro, required: []string{"relationship_type", "source_ref", "target_ref"},
		props: props{"relationship_type": relationshipType, "description": str,
			"source_ref": refNot("an SDO or SCO", notEndpoint), "target_ref": refNot("an SDO or SCO", notEndpoint),
			"start_time": ts, "stop_time": ts},
		rules: func(o *object) bool { return o.order("start_time", "stop_time", true) }},
	"sighting": {class: sro, required: []string{"sighting_of_ref"},
		props: with(seenProps, props{"description": str, "count": integer(0, 999999999),
			"sighting_of_ref": refNot("an SDO", notSDO), "observed_data_refs": refs("observed-data"),
			"where_sighted_refs": refs("identity", "location"), "summary": boolean}),
		rules: seen},

	// §6 STIX Cyber-observable Objects.
	"artifact": {class: sco,
		props: props{"mime_type": str, "url": str, "hashes": hashes, "decryption_key": str,
			"encryption_algorithm": enum("AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated")},
		rules: artifactRules},
	"autonomous-system":    {class: sco, required: []string{"number"}, props: props{"number": anyInteger, "name": str, "rir": str}},
	"directory":            {class: sco, required: []string{"path"}, props: props{"path": str, "ctime": ts, "mtime": ts, "atime": ts}},
	"domain-name":          {class: sco, required: []string{"value"}, props: props{"value": str}},
	"email-addr":           {class: sco, required: []string{"value"}, props: props{"value": str, "display_name": str}},
	"email-message":        {class: sco, required: []string{"is_multipart"}, props: emailProps, rules: emailRules},
	"file":                 {class: sco, props: fileProps, rules: oneOf("hashes", "name")},
	"ipv4-addr":            {class: sco, required: []string{"value"}, props: props{"value": str}},
	"ipv6-addr":            {class: sco, required: []string{"value"}, props: props{"value": str}},
	"mac-addr":             {class: sco, required: []string{"value"}, props: props{"value": str}},
	"mutex":                {class: sco, required: []string{"name"}, props: props{"name": str}},
	"network-traffic":      {class: sco, required: []string{"protocols"}, props: trafficProps, rules: trafficRules},
	"process":              {class: sco},
	"software":             {class: sco, required: []string{"name"}, props: props{"name": str, "cpe": str, "languages": strList, "vendor": str, "version": str}},
	"url":                  {class: sco, required: []string{"value"}, props: props{"value": str}},
	"user-account":         {class: sco},
	"windows-registry-key": {class: sco},
	"x509-certificate":     {class: sco},

	// §7 STIX Meta Objects.
	"language-content": {class: meta, common: []string{"spec_version", "created", "modified"},
		required: []string{"object_ref", "contents"},
		props:    props{"object_modified": tsMillis, "contents": languageContents}},
	"marking-definition": {class: meta, common: []string{"spec_version", "created"},
		props: props{"name": str, "definition_type": str, "definition": markingObject},
		rules: markingRules},
	"extension-definition": {class: meta, common: []string{"spec_version", "created", "modified", "created_by_ref"},
		required: []string{"name", "schema", "version", "extension_types"},
		props: with(named, props{"schema": str, "version": str,
			"extension_types":      func(o *object, n int32) bool { return o.list(n, enum(extensionTypes...)) },
			"extension_properties": strList}),
		rules: extensionDefinitionRules},
}

var (
	emailProps = props{"is_multipart": boolean, "date": ts, "content_type": str, "message_id": str,
		"subject": str, "received_lines": strList, "additional_header_fields": dict, "body": str,
		"body_multipart": mimeParts}
	fileProps = props{"hashes": hashes, "size": nonNeg, "name": str, "mime_type": str,
		"ctime": ts, "mtime": ts, "atime": ts}
	trafficProps = props{"start": ts, "end": ts, "is_active": boolean, "src_port": integer(0, 65535),
		"dst_port": integer(0, 65535), "protocols": strList, "ipfix": dict}
)

var (
	bodyRawRef = ref("artifact", "file")
	tlpLevel   = enum("white", "green", "amber", "red")
)

// relationshipType is ASCII a-z, 0-9 and hyphen (§5.1).
func relationshipType(o *object, n int32) bool {
	if !str(o, n) {
		return false
	}
	s := o.d.str(n)
	ok := s != ""
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return o.here("must hold only a-z, 0-9 and -, got " + show(s))
	}
	return true
}

// mimeParts is email-message's body_multipart (§6.6.2): MIME parts each
// with body or body_raw_ref.
func mimeParts(o *object, n int32) bool {
	return o.list(n, func(o *object, e int32) bool {
		if !o.kindIs(e, kObject, "a MIME part (JSON object)") {
			return false
		}
		b, ok := o.member(e, "body", str, false)
		if !ok {
			return false
		}
		r, ok := o.member(e, "body_raw_ref", bodyRawRef, false)
		if !ok {
			return false
		}
		for _, k := range []string{"content_type", "content_disposition"} {
			if _, ok := o.member(e, k, str, false); !ok {
				return false
			}
		}
		if b < 0 && r < 0 {
			return o.here(`needs one of "body" or "body_raw_ref"`)
		}
		return o.suffixes(e, "body_raw_ref")
	})
}

// languageContents is language-content's contents (§7.1): a dictionary of
// language tags to dictionaries of translated properties.
func languageContents(o *object, n int32) bool {
	if !dict(o, n) {
		return false
	}
	for c := o.d.first(n); c >= 0; c = o.d.next(n, c) {
		o.push(o.d.key(c))
		if !dict(o, c) {
			return false
		}
		o.pop()
	}
	return true
}

// markingObject is a marking definition's definition: a non-empty object.
func markingObject(o *object, n int32) bool {
	if !o.kindIs(n, kObject, "a marking object (JSON object)") {
		return false
	}
	if o.d.empty(n) {
		return o.here("must not be empty")
	}
	return true
}

func markingRules(o *object) bool {
	d := o.d
	dt, def := d.get(o.n, "definition_type"), d.get(o.n, "definition")
	if !o.has("extensions") {
		// Without extensions, the (deprecated) definition_type and
		// definition must be present (§7.2.1).
		switch {
		case dt < 0:
			return o.bad("definition_type", "required property missing (no extensions)")
		case def < 0:
			return o.bad("definition", "required property missing (no extensions)")
		}
	}
	if dt < 0 || def < 0 {
		return true
	}
	switch d.str(dt) {
	case "tlp":
		o.push("definition")
		l, ok := o.member(def, "tlp", tlpLevel, true)
		if !ok {
			return false
		}
		o.pop()
		level := d.str(l)
		if id := d.str(d.get(o.n, "id")); id != tlpMarkings[level] {
			return o.bad("id", "a TLP marking must be the standard TLP:"+level+" definition "+tlpMarkings[level]+", got "+show(id))
		}
	case "statement":
		o.push("definition")
		_, ok := o.member(def, "statement", str, true)
		return ok
	}
	return true
}

func extensionDefinitionRules(o *object) bool {
	if !o.has("extension_properties") {
		return true
	}
	et := o.d.get(o.n, "extension_types")
	for c := o.d.first(et); c >= 0; c = o.d.next(et, c) {
		if o.d.str(c) == "toplevel-property-extension" {
			return true
		}
	}
	return o.bad("extension_properties", `may be present only when extension_types holds "toplevel-property-extension"`)
}

func locationRules(o *object) bool {
	lat, lon := o.has("latitude"), o.has("longitude")
	switch {
	case lat && !lon:
		return o.bad("longitude", "required property missing (latitude is present)")
	case lon && !lat:
		return o.bad("latitude", "required property missing (longitude is present)")
	case o.has("precision") && !lat:
		return o.bad("precision", "must not be present without latitude and longitude")
	case !lat && !o.has("region") && !o.has("country"):
		return o.bad("", `needs one of "region", "country", or "latitude" and "longitude"`)
	}
	return true
}

func observedDataRules(o *object) bool {
	// objects is the deprecated alternative to object_refs (§4.14):
	// exactly one of the two.
	switch objs, refs := o.has("objects"), o.has("object_refs"); {
	case objs && refs:
		return o.bad("objects", `must not be present together with "object_refs"`)
	case !objs && !refs:
		return o.bad("object_refs", "required property missing")
	}
	return o.order("first_observed", "last_observed", false)
}

func artifactRules(o *object) bool {
	bin, url := o.has("payload_bin"), o.has("url")
	switch {
	case bin && url:
		return o.bad("url", `must not be present together with "payload_bin"`)
	case !bin && !url:
		return o.bad("", `needs one of "payload_bin" or "url"`)
	case url && !o.has("hashes"):
		return o.bad("hashes", "required property missing (url is present)")
	case o.has("decryption_key") && !o.has("encryption_algorithm"):
		return o.bad("decryption_key", `must not be present without "encryption_algorithm"`)
	}
	return true
}

func emailRules(o *object) bool {
	multi := o.isTrue("is_multipart")
	switch {
	case multi && o.has("body"):
		return o.bad("body", "must not be present when is_multipart is true")
	case !multi && o.has("body_multipart"):
		return o.bad("body_multipart", "must not be present when is_multipart is false")
	}
	return true
}

func trafficRules(o *object) bool {
	if !o.has("src_ref") && !o.has("dst_ref") {
		return o.bad("", `needs one of "src_ref" or "dst_ref"`)
	}
	if o.isTrue("is_active") && o.has("end") {
		return o.bad("end", "must not be present when is_active is true")
	}
	return o.order("start", "end", false)
}
