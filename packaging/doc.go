// Package packaging holds what the hotline .deb is made of besides the
// binaries: nfpm.yaml (its contents, modes and owners), sysusers.d and
// tmpfiles.d files, and the maintainer scripts. scripts/build-deb builds
// it; the tests here build it, install it into a fresh root and check the
// result, and score the systemd unit (configs/systemd/hotlined.service).
package packaging
