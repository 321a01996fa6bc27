package queue

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The site version is a feature gate, as etcd's cluster version: a number
// in the replicated state that says which commands every node of the site
// understands. A command that an older build cannot apply may be proposed
// only once the site version allows it; the daemon raises the version
// (OpSiteVersion) when every server of the Raft configuration runs a build
// that understands the new one. It starts at 1 (no key in the meta
// bucket) and only goes up.
//
// Raising it to 2 or more also moves the state file to format 8 (store.go:
// format 7 plus the site version key), which a build before site versions
// refuses: that is where rolling back to such a build stops being
// possible, and a site only gets there once every node runs a newer one.
//
// A log entry carrying the body is of format 6 (command_codec.go):
//
//	SiteVersion = version:uvarint    (body bit 13; bit 11 is unused)
//
// An entry of an earlier binary format never carries it (DecodeCommand
// refuses one that does, as 0.1.0 refuses the unknown body bit), and the
// JSON format's "site_version" key is ignored (as 0.1.0 ignores an unknown
// field), so a node of this build applies every entry an older node
// applies exactly as that node does.

// MaxSiteVersion is the highest site version this build understands.
// Version 2: the intra-site protocol of rolling upgrades (issue 13).
const MaxSiteVersion = 2

// SiteVersionCmd is OpSiteVersion's body: raise the site version to
// Version. A version at or below the current one changes nothing (the
// leader may propose the same raise twice); one above MaxSiteVersion
// stops Apply (NewerSiteVersionError).
type SiteVersionCmd struct {
	Version uint64 `json:"version"`
}

// SiteVersionResult is the outcome of an OpSiteVersion: the site version
// after the command, and whether the command raised it (false: it was
// already that high or higher, and nothing changed).
type SiteVersionResult struct {
	Version uint64 `json:"version"`
	Raised  bool   `json:"raised,omitempty"`
}

// NewerSiteVersionError is the error that stops Apply at an OpSiteVersion
// above MaxSiteVersion, and that Open and Restore return for a state file
// whose site version is above it: the other nodes run a build that
// understands commands this one does not, so applying on would diverge.
// The node must be upgraded. Check with errors.As.
type NewerSiteVersionError struct{ Version uint64 }

func (e *NewerSiteVersionError) Error() string {
	return fmt.Sprintf("site version %d is newer than this build understands (%d): run a newer build", e.Version, MaxSiteVersion)
}

// bodySiteVersion is the body bit of SiteVersion (log entry format 6).
const bodySiteVersion = 1 << 13

// metaSiteVersion is the meta key of the site version (format 8); absent:
// version 1.
var metaSiteVersion = []byte("site_version")

// siteVersionFormat is the state file format that holds a site version.
const siteVersionFormat = 8

func appendSiteVersion(b []byte, sv *SiteVersionCmd) []byte {
	if sv == nil {
		return b
	}
	return binary.AppendUvarint(b, sv.Version)
}

func siteVersionSize(sv *SiteVersionCmd) int {
	if sv == nil {
		return 0
	}
	return uvarintLen(sv.Version)
}

func decodeSiteVersion(d *Decoder, c *Command, bodies uint64) {
	if bodies&bodySiteVersion == 0 {
		return
	}
	c.SiteVersion = &SiteVersionCmd{Version: d.Uvarint()}
	if d.Err() == nil && c.Op != OpSiteVersion {
		d.fail("site version body on a %s command", c.Op)
	}
}

// siteVersionFault returns the error that must stop Apply at c, or nil.
func (c *Command) siteVersionFault() error {
	if c.Op == OpSiteVersion && c.SiteVersion != nil && c.SiteVersion.Version > MaxSiteVersion {
		return &NewerSiteVersionError{Version: c.SiteVersion.Version}
	}
	return nil
}

// storedSiteVersion reads the site version of the state (1 when absent).
func storedSiteVersion(meta *bolt.Bucket) uint64 {
	if v := getU64(meta, metaSiteVersion); v > 1 {
		return v
	}
	return 1
}

// siteVersion applies an OpSiteVersion whose version this build
// understands (applyTx stopped at any other).
func (a *applier) siteVersion(sv *SiteVersionCmd) (Result, error) {
	cur := storedSiteVersion(a.meta)
	if sv.Version <= cur {
		return Result{SiteVersion: &SiteVersionResult{Version: cur}}, nil
	}
	if err := a.meta.Put(metaSiteVersion, u64(sv.Version)); err != nil {
		return Result{}, err
	}
	if err := a.meta.Put(metaVersion, u64(siteVersionFormat)); err != nil {
		return Result{}, err
	}
	a.siteVer = sv.Version
	return Result{SiteVersion: &SiteVersionResult{Version: sv.Version, Raised: true}}, nil
}

// SiteVersion returns the site version of the applied state: 1 until an
// OpSiteVersion raised it. It reads no file (cached at Open, Apply and
// Restore) and is safe for concurrent use.
func (s *Store) SiteVersion() uint64 { return s.siteVer.Load() }
