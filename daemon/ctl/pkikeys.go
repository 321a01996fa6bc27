package ctl

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

func newPKIKeysCmd(e *env) *cobra.Command {
	var dir, site string
	cmd := &cobra.Command{
		Use:   "keys --dir DIR --site SITE",
		Short: "Create a site's signing and KEM keys in DIR (SITE.sign.key, SITE.kem.key, SITE.pub)",
		Long: `keys creates a new site key pair set in DIR: SITE.sign.key (the hybrid
Ed25519 + ML-DSA-65 signing key) and SITE.kem.key (the X-Wing key payloads
to the site are sealed to), both mode 0600, and SITE.pub (0644), their
public keys as two keyring lines. Run it once per site, on that site; the
three nodes of the site share the two private keys; only SITE.pub leaves
the site. Existing files are never overwritten.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			switch {
			case dir == "":
				return usagef("pki keys: --dir DIR is required")
			case site == "":
				return usagef("pki keys: --site SITE is required")
			}
			if err := pki.ValidName(site); err != nil {
				return usagef("pki keys: --site: %v", err)
			}
			files, err := trust.CreateSiteKeys(dir, site)
			if err != nil {
				return fmt.Errorf("pki keys: %w", err)
			}
			if err := printWritten(e, files...); err != nil {
				return err
			}
			pub := filepath.Join(dir, trust.PublicKeysFile(site))
			lines, err := readKeyLines(pub, false)
			if err != nil {
				return fmt.Errorf("pki keys: %w", err)
			}
			var ids []string
			for _, l := range lines {
				ids = append(ids, l.kind+" "+l.id)
			}
			_, err = fmt.Fprintf(e.stdout, "key ids of %s: %s (compare them with the other sites when they receive %s)\n",
				site, strings.Join(ids, ", "), trust.PublicKeysFile(site))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "`DIR` to create the keys in (created 0700 if missing)")
	f.StringVar(&site, "site", "", "`SITE` the keys are for")
	return cmd
}

func newPKIKeyringCmd(e *env) *cobra.Command {
	var out string
	var retire []string
	cmd := &cobra.Command{
		Use:   "keyring --out FILE [--retire FILE]... SITE.pub...",
		Short: "Build the keyring file pinning every site's public keys (sites.pub)",
		Long: `keyring reads the public keys files given (each site's SITE.pub, or an
existing keyring) and writes FILE, the keyring a node's [trust] keys names:
every line once, in the order read, mode 0644, replaced atomically. The kem
keys of the files given with --retire are written "retired": payloads are
no longer sealed to them (a rotation, see the README); their signing keys
stay, as they still verify. It refuses a malformed line (naming the file
and line), a key pinned for two sites, and a keyring in which a site lacks
a signing key or has not exactly one current kem key. It prints each
site's key ids.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 && len(retire) == 0 {
				return usagef("pki keyring: give the public keys files (SITE.pub) to pin")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if out == "" {
				return usagef("pki keyring: --out FILE is required")
			}
			var r keyringBuilder
			for _, f := range retire {
				if err := r.add(f, true); err != nil {
					return fmt.Errorf("pki keyring: %w", err)
				}
			}
			for _, f := range args {
				if err := r.add(f, false); err != nil {
					return fmt.Errorf("pki keyring: %w", err)
				}
			}
			text, err := r.text()
			if err != nil {
				return fmt.Errorf("pki keyring: %w", err)
			}
			if err := replaceFile(out, text, 0o644); err != nil {
				return fmt.Errorf("pki keyring: %w", err)
			}
			if err := printWritten(e, out); err != nil {
				return err
			}
			return r.print(e)
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "keyring `FILE` to write (sites.pub)")
	f.StringArrayVar(&retire, "retire", nil, "public keys `FILE` whose kem keys are retired (repeatable)")
	return cmd
}

// keyLine is one line of a public keys file.
type keyLine struct {
	site, kind, id, key string // the key as base64
	retired             bool
	file                string
	line                int
}

func (l *keyLine) where() string { return fmt.Sprintf("%s line %d", l.file, l.line) }

// readKeyLines reads a public keys file: trust.ParseKeyring checks it
// (a malformed line is named with the file and line), then its lines are
// taken apart as they stand. retire marks its kem lines retired.
func readKeyLines(file string, retire bool) ([]*keyLine, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if _, err := trust.ParseKeyring(data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var lines []*keyLine
	for i, s := range strings.Split(string(data), "\n") {
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s) // checked by ParseKeyring: 4 fields, or 5 ending in "retired"
		l := &keyLine{site: f[0], kind: f[1], id: f[2], key: f[3], retired: len(f) == 5, file: file, line: i + 1}
		if retire && l.kind == "kem" {
			l.retired = true
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// keyringBuilder merges public keys files into one keyring.
type keyringBuilder struct {
	lines []*keyLine
	byKey map[string]*keyLine // "SITE KIND ID"
	byRaw map[string]*keyLine // "KIND " + the decoded key
}

func (r *keyringBuilder) add(file string, retire bool) error {
	lines, err := readKeyLines(file, retire)
	if err != nil {
		return err
	}
	if r.byKey == nil {
		r.byKey, r.byRaw = map[string]*keyLine{}, map[string]*keyLine{}
	}
	for _, l := range lines {
		raw, _ := base64.StdEncoding.DecodeString(l.key) // checked by ParseKeyring
		rawKey := l.kind + " " + string(raw)
		if o := r.byRaw[rawKey]; o != nil && o.site != l.site {
			return fmt.Errorf("%s pins a %s key of site %s that %s pins for site %s: a key belongs to one site", l.where(), l.kind, l.site, o.where(), o.site)
		}
		name := l.site + " " + l.kind + " " + l.id
		if o := r.byKey[name]; o != nil {
			if r.byRaw[rawKey] != o {
				return fmt.Errorf("%s and %s give two different %s keys of %s the id %s", o.where(), l.where(), l.kind, l.site, l.id)
			}
			o.retired = o.retired || l.retired // once retired, retired
			continue
		}
		r.byKey[name], r.byRaw[rawKey] = l, l
		r.lines = append(r.lines, l)
	}
	return nil
}

// sites lists the sites in the order their first line came.
func (r *keyringBuilder) sites() []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range r.lines {
		if !seen[l.site] {
			seen[l.site] = true
			out = append(out, l.site)
		}
	}
	return out
}

// text is the keyring file, after checking that every site has a signing
// key and exactly one current kem key.
func (r *keyringBuilder) text() ([]byte, error) {
	for _, site := range r.sites() {
		var sign int
		var cur []*keyLine
		for _, l := range r.lines {
			switch {
			case l.site != site:
			case l.kind == "sign":
				sign++
			case !l.retired:
				cur = append(cur, l)
			}
		}
		switch {
		case sign == 0:
			return nil, fmt.Errorf("no signing key of site %s is given (its SITE.pub has one)", site)
		case len(cur) == 0:
			return nil, fmt.Errorf("site %s has no current kem key (every one given is retired): payloads could not be sealed to it", site)
		case len(cur) > 1:
			return nil, fmt.Errorf("site %s has two current kem keys, %s (%s) and %s (%s): give the old key's file with --retire", site, cur[0].id, cur[0].where(), cur[1].id, cur[1].where())
		}
	}
	var b bytes.Buffer
	b.WriteString("# hotline keyring (hotlinectl pki keyring): SITE sign|kem KEYID KEY [retired]\n")
	for _, l := range r.lines {
		fmt.Fprintf(&b, "%s %s %s %s", l.site, l.kind, l.id, l.key)
		if l.retired {
			b.WriteString(" retired")
		}
		b.WriteByte('\n')
	}
	if _, err := trust.ParseKeyring(b.Bytes()); err != nil {
		return nil, fmt.Errorf("the merged keyring does not parse: %w", err)
	}
	return b.Bytes(), nil
}

// print lists each site's keys: id and state.
func (r *keyringBuilder) print(e *env) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tKEY\tID\tSTATE")
	for _, site := range r.sites() {
		for _, l := range r.lines {
			if l.site != site {
				continue
			}
			state := "verifies"
			if l.kind == "kem" {
				state = "current: payloads are sealed to it"
				if l.retired {
					state = "retired"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.site, l.kind, l.id, state)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("pki keyring: write output: %w", err)
	}
	return nil
}

// replaceFile writes data to a new file beside path, synced, with mode,
// and renames it over path: readers see the old file or the new one.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := pki.WriteNew(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
