// Package buildinfo says which build of hotline is running: the release
// version, the commit and the Go toolchain. hotlined and hotlinectl print
// it for --version, hotlined with what it speaks and reads (its protocol
// versions and the formats of its stored data, [Speaks]); the daemon
// reports the version in its status and in the hotline_build_info metric.
//
// Contract: [Read] never fails and is safe for concurrent use; unknown
// fields are empty, except Version, which is at least [Release]. [Info.Text]
// is what --version prints, [Info.Template] the same for cobra, printed
// literally whatever the link-time strings hold.
//
// The version is set at link time for releases (scripts/build-deb does):
//
//	go build -ldflags "-X github.com/hotline-link/hotline/daemon/buildinfo.version=1.2.0 -X github.com/hotline-link/hotline/daemon/buildinfo.commit=0123abc" ./cmd/...
//
// Otherwise it comes from the module version Go records (a `go install
// module@version`), else it is [Release], the release this tree is. The commit comes from the
// link-time value, else from the VCS stamping Go does when it builds
// inside a git checkout (vcs.revision, vcs.modified; not under
// -buildvcs=false, nor in a git worktree).
package buildinfo
