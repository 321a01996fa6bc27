package ctl

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/transport/pki"
)

func newPKICmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Create the deployment's CA, node certificates and site keys",
		Long: `pki writes the certificate files hotline nodes authenticate each other
with: "pki init" creates the CA (ca.crt, ca.key) in a directory, "pki issue"
signs a node's certificate and key with it. Keep ca.key offline; give each
node ca.crt and its own pair.

It also writes the site keys that sign what a site states and open the
payloads sealed to it: "pki keys" creates a site's signing and KEM keys
(SITE.sign.key, SITE.kem.key, 0600) and their public lines (SITE.pub), on
that site, for its three nodes; "pki keyring" merges every site's SITE.pub
into the keyring file (sites.pub) each node's config pins. Only .pub files
are exchanged between sites. Existing key and certificate files are never
overwritten.`,
	}
	groupCommand(cmd)
	cmd.AddCommand(newPKIInitCmd(e), newPKIIssueCmd(e), newPKIKeysCmd(e), newPKIKeyringCmd(e))
	return cmd
}

func newPKIInitCmd(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a new CA in DIR (ca.crt, ca.key)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usagef("pki init: --dir DIR is required")
			}
			if err := pki.Init(dir); err != nil {
				return err
			}
			return printWritten(e, filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "`DIR` to create the CA in (created if missing)")
	return cmd
}

func newPKIIssueCmd(e *env) *cobra.Command {
	var dir, site, node string
	cmd := &cobra.Command{
		Use:   "issue --dir DIR --site SITE --node NODE",
		Short: "Issue a node certificate and key signed by the CA in DIR",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			switch {
			case dir == "":
				return usagef("pki issue: --dir DIR is required")
			case site == "":
				return usagef("pki issue: --site SITE is required")
			case node == "":
				return usagef("pki issue: --node NODE is required")
			}
			if err := pki.ValidName(site); err != nil {
				return usagef("pki issue: --site: %v", err)
			}
			if err := pki.ValidName(node); err != nil {
				return usagef("pki issue: --node: %v", err)
			}
			certFile, keyFile, err := pki.Issue(dir, site, node)
			if err != nil {
				return err
			}
			return printWritten(e, certFile, keyFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "`DIR` holding the CA (from pki init)")
	f.StringVar(&site, "site", "", "`SITE` the node belongs to")
	f.StringVar(&node, "node", "", "`NODE` name")
	return cmd
}

// printWritten reports the files a pki command created.
func printWritten(e *env, files ...string) error {
	for _, f := range files {
		if _, err := fmt.Fprintf(e.stdout, "wrote %s\n", f); err != nil {
			return fmt.Errorf("pki: write output: %w", err)
		}
	}
	return nil
}
