// Package stix validates STIX 2.1 bundles (MediaType,
// "application/stix+json;version=2.1") against what the STIX 2.1
// specification (OASIS Standard, with Errata 01; section numbers below are
// its) makes mandatory. It is a focused validator, not a STIX library: it
// reads a payload and says whether it may travel as a STIX 2.1 bundle.
//
// Contract: [Validate] takes the whole payload and returns nil or a
// *[Error] naming the first problem: the object (index in "objects", id
// when known), the property (JSON path inside the object) and what is
// wrong; errors.Is(err, [ErrInvalid]) holds. It is a pure function: no
// I/O, no state, safe for concurrent use. It never panics; time is linear
// in the payload, and so is memory: Validate allocates at most
// [AllocPerByte] (8) bytes per payload byte plus [AllocFixed] (64 KiB),
// garbage included, whatever the payload (payloads built to cost the most
// reach 6.5 bytes per byte, a typical bundle less than 1). The payload is
// not copied; each JSON value and each key costs a 12-byte node (at most
// one node per two payload bytes), an object of more than 16 members a
// key table. [IsMediaType] says whether a media type names a STIX 2.1
// bundle.
//
// Order: a payload whose first byte after white space does not begin an
// object is refused at once, as not a bundle, without reading further.
// Then the JSON as a whole, then the bundle's own properties, then each
// object in order; within an object, type and id first (the other checks
// depend on them), then each property in document order, then required
// properties that are missing, then rules between properties.
//
// # What is checked
//
// JSON (RFC 8259): exactly one value, white space around it allowed and
// nothing else (trailing data is refused); strings of valid UTF-8 (an
// escaped lone surrogate, \ud800, reads as U+FFFD); nesting at most
// [MaxDepth] levels, refused before it is descended into; duplicate keys
// in an object are refused (RFC 8259 leaves them undefined and I-JSON,
// RFC 7493, forbids them: a validator and a consumer that picked
// different duplicates would not read the same bundle).
//
// Bundle (§8): type "bundle"; id bundle--<UUID>; no spec_version (a
// bundle has none in 2.1; "2.1" is tolerated, anything else, such as a
// STIX 2.0 bundle's "2.0", refused); objects optional, but if present a
// non-empty list whose items are STIX objects (not bundles). Other
// properties of the bundle are not checked.
//
// Every object:
//   - type: 3 to 250 characters of a-z, 0-9 and -, beginning with a
//     letter, no "--", not ending in "-" (§3.1, §7.3.2).
//   - id: <type>--<UUID> whose type is the object's type and whose UUID is
//     an RFC 4122 UUID (variant 1; any version 1 to 8, since v4 for
//     SDOs/SROs and v5 for SCOs are only SHOULD) (§2.9). Hex may be upper
//     or lower case.
//   - property names: 3 to 250 characters of a-z, 0-9 and _, beginning
//     with a letter (§3.1, §11.1); the reserved names severity, username,
//     phone_number and action are refused (§3.8).
//   - spec_version "2.1": required for SDOs, SROs and meta objects,
//     optional for SCOs and unknown types (§3.2).
//   - created and modified: required for SDOs, SROs, language-content and
//     extension-definition (created alone for marking-definition);
//     timestamps YYYY-MM-DDTHH:MM:SS[.s+]Z in UTC with a valid date and
//     time (§2.16), at least millisecond precision (§3.2), and modified
//     not earlier than created (§3.6.1). Other timestamps have the same
//     format without the precision rule.
//   - common properties when present (§3.2): created_by_ref an identity
//     identifier; revoked and defanged booleans (defanged only on SCOs);
//     labels a list of strings; confidence an integer 0 to 100; lang an
//     RFC 5646-shaped tag; external_references each with source_name and
//     one of description, url or external_id, hashes well formed (§2.5);
//     object_marking_refs marking-definition identifiers; granular_markings
//     each with selectors that select something present in the object and
//     exactly one of marking_ref (a marking-definition identifier) or lang
//     (§7.2.3); extensions a dictionary of non-empty objects, a key
//     extension-definition--<UUID> needing extension_type, any
//     extension_type one of extension-type-enum (§7.3).
//   - by name (§3.1), at the top level of the object, of each extension
//     and of each email MIME part: *_ref an identifier, *_refs a non-empty
//     list of identifiers, *_hex hex (§2.8), *_bin base64 (§2.1); at the
//     top level, *_enc only beside the property it qualifies.
//   - anywhere inside a property: no empty list (§2.12) and no empty
//     dictionary (§2.3).
//   - integers within ±(2^53-1) (§2.10), written without fraction or
//     exponent; lists, strings, booleans and numbers of the right JSON
//     type; hashes keys of 3 to 250 characters and MD5, SHA-1, SHA-256,
//     SHA-512, SHA3-256 and SHA3-512 values hex of the right length (§2.7).
//
// Per type, the required properties and the rules the specification
// states (see types.go for the table):
//   - SDOs (§4): attack-pattern, campaign, course-of-action, identity,
//     incident, infrastructure, intrusion-set, threat-actor, tool and
//     vulnerability need name; grouping context and object_refs; indicator
//     pattern, pattern_type, valid_from, and valid_until later than
//     valid_from; location one of region, country or latitude and
//     longitude (together), coordinates in range, precision only with
//     them; malware is_family, and name when is_family is true;
//     malware-analysis product and one of result or analysis_sco_refs;
//     note content and object_refs; observed-data first_observed,
//     last_observed (not earlier), number_observed 1 to 999,999,999 and
//     exactly one of object_refs or the deprecated objects; opinion
//     object_refs and an opinion from opinion-enum; report name,
//     published and object_refs; last_seen not earlier than first_seen
//     wherever both occur.
//   - SROs (§5): relationship relationship_type (a-z, 0-9, -), source_ref
//     and target_ref (not an SRO, bundle or meta object), stop_time later
//     than start_time; sighting sighting_of_ref (not a known non-SDO type),
//     count 0 to 999,999,999, observed_data_refs to observed-data,
//     where_sighted_refs to identity or location.
//   - SCOs (§6): artifact one of payload_bin or url (not both), hashes
//     with url, decryption_key only with encryption_algorithm (from its
//     enumeration); autonomous-system number; directory path;
//     domain-name, email-addr, ipv4-addr, ipv6-addr, mac-addr and url
//     value; email-message is_multipart, body only when false,
//     body_multipart only when true, each part with body or body_raw_ref;
//     file hashes or name, size not negative; mutex name; network-traffic
//     protocols, src_ref or dst_ref, ports 0 to 65535, end not before start
//     and absent when is_active; software name. process, user-account,
//     windows-registry-key and x509-certificate get the common checks only.
//   - meta objects (§7): marking-definition definition_type and
//     definition unless extensions is present, a "tlp" definition one of
//     white, green, amber, red and the object exactly the standard
//     definition of that level (its id), a "statement" definition a
//     statement; language-content object_ref and contents (a dictionary of
//     dictionaries); extension-definition created_by_ref, name, schema,
//     version, extension_types from extension-type-enum, and
//     extension_properties only with toplevel-property-extension.
//   - any other type (a custom object, or one defined by an extension
//     definition) gets the checks of every object above and nothing more.
//
// # What is not checked
//
//   - Patterns (the STIX Patterning language of §9, or any other
//     pattern_type), selectors' syntax beyond resolving them.
//   - Open vocabularies (their values are SHOULD) and enumerations other
//     than opinion-enum, extension-type-enum, encryption-algorithm-enum and
//     the TLP levels.
//   - That references resolve: a ref may name an object not in the bundle
//     (§3.3); only the referred type is checked where the specification
//     restricts it (see above). Duplicate ids and versions in one bundle.
//   - The deprecated observed-data objects container's content, and
//     properties nested in extensions beyond the suffix rules (extension
//     property names, predefined extensions' required properties).
//   - The meaning of string values: URLs, IP addresses, domain names,
//     e-mail addresses, MIME types, country codes, CVE or CAPEC ids,
//     language tags against the IANA registry, hash formats other than
//     those listed, whether created and modified are in the past, SHOULD
//     rules (UUID versions, deterministic SCO ids, recommended properties).
//   - Properties of the SCOs, SDOs and meta objects that this package does
//     not list are checked only by the common and suffix rules; an
//     unknown property is allowed (custom properties, §11.1).
//   - Leap seconds (23:59:60) are refused as an invalid time of day.
package stix
