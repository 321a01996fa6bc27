package ctl

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/transport/trust"
)

func newVerifyCmd(e *env) *cobra.Command {
	var keys, plaintext string
	cmd := &cobra.Command{
		Use:   "verify FILE --keys FILE [--plaintext FILE]",
		Short: "Check a message's evidence bundle offline against the pinned public keys",
		Long: `verify checks an evidence bundle (written by "hotlinectl get ID --proof
FILE"; "-" reads stdin) offline, with nothing but the public keys of the
keyring file given by --keys (a sites.pub as every site pins it): each
signed statement's hybrid signature, that it is of the right kind, by the
right site, about the message's channel and sequence, and that the leaf
recomputed from the bundle's fields is in its Merkle tree; each audit
record's inclusion in the log its signed checkpoint states; the sealed
payload (the envelope, when the bundle holds it): that it is the payload
the statements sign, and so the plaintext SHA-256 its header states.

--plaintext FILE also checks that FILE's SHA-256 is that proven plaintext
hash: the sender, or a destination client that read the message, shows
that this exact text was sent, delivered and read. A bundle without the
envelope (a tombstone) proves no plaintext: a "note" line says so, and
--plaintext then fails.

It prints one line per part, "ok", "FAIL" or "note" and what it shows,
and exits 0 only if every part verifies, the bundle holds at least one
signed statement and the plaintext (if given) is the proven one;
otherwise 1, naming what failed. It never uses the socket.

--keys is required: which keys to trust is the verifier's choice, not the
bundle's nor a daemon's.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return usagef("verify takes one argument, the bundle FILE (- for stdin)")
			}
			if keys == "" {
				return usagef("verify needs --keys FILE: the keyring (sites.pub) of the public keys to check the bundle with")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return e.verify(args[0], keys, plaintext)
		},
	}
	cmd.Flags().StringVar(&keys, "keys", "", "the keyring `FILE` pinning every site's public keys (sites.pub)")
	cmd.Flags().StringVar(&plaintext, "plaintext", "", "also check that `FILE` is the message's plaintext the evidence proves")
	return cmd
}

func (e *env) verify(file, keys, plaintext string) error {
	ring, err := trust.LoadKeyring(keys)
	if err != nil {
		return fmt.Errorf("verify: keys: %w", err)
	}
	var sum [sha256.Size]byte
	if plaintext != "" {
		if sum, err = fileSHA256(plaintext); err != nil {
			return fmt.Errorf("verify: --plaintext: %w", err)
		}
	}
	data, err := e.readBundle(file)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	b, err := trust.ParseBundle(data)
	if err != nil {
		return fmt.Errorf("verify %s: %w", file, err)
	}
	m := &b.Message
	r, verr := trust.VerifyBundle(b, ring)
	fmt.Fprintf(e.stdout, "message %s: %s -> %s, %s, seq %d, submitted %s, payload sha256 %x\n",
		safe(m.ID), safe(m.Origin), safe(m.Dest), m.Precedence, m.Seq, fmtTime(time.Unix(0, m.SubmittedAt).UTC()), m.PayloadSHA256[:])
	parts := 0
	if r != nil {
		for _, c := range r.Checks {
			status, text := "ok  ", c.Detail
			switch {
			case c.Err != nil:
				status, text = "FAIL", strings.TrimPrefix(c.Detail+": ", ": ")+c.Err.Error()
			case c.Note:
				status = "note"
			default:
				parts++
			}
			fmt.Fprintf(e.stdout, "%s %-9s %s\n", status, c.What, text)
		}
	}
	if verr != nil {
		return fmt.Errorf("verify %s: message %s: %w", file, safe(m.ID), verr)
	}
	what := ""
	if plaintext != "" {
		if err := r.CheckPlaintext(sum); err != nil {
			fmt.Fprintf(e.stdout, "FAIL plaintext %s: %v\n", safe(plaintext), err)
			return fmt.Errorf("verify %s: message %s: --plaintext %s: %w", file, safe(m.ID), safe(plaintext), err)
		}
		fmt.Fprintf(e.stdout, "ok   plaintext %s has sha256 %x, the proven plaintext's\n", safe(plaintext), sum[:])
		what = ", and " + safe(plaintext) + " is its plaintext"
	}
	_, err = fmt.Fprintf(e.stdout, "verified: %d parts of the evidence of %s, with the keys of %s%s\n", parts, safe(m.ID), keys, what)
	return err
}

// fileSHA256 is the SHA-256 of a file's contents, read as a stream.
func fileSHA256(file string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(file)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("read %s: %w", file, err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// readBundle reads a bundle file (or stdin for "-"), at most
// trust.MaxBundleSize bytes.
func (e *env) readBundle(file string) ([]byte, error) {
	var in io.Reader = e.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(io.LimitReader(in, trust.MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > trust.MaxBundleSize {
		return nil, fmt.Errorf("%s is larger than a bundle can be (%d bytes)", file, trust.MaxBundleSize)
	}
	return data, nil
}

// getProof writes message id's evidence bundle to file ("-": stdout),
// through file.tmp and a rename so that a failure leaves no partial file.
func (e *env) getProof(ctx context.Context, id, file string) (err error) {
	data, err := e.client().Proof(ctx, id)
	if err != nil {
		return fmt.Errorf("get %s --proof: %w", id, err)
	}
	b, err := trust.ParseBundle(data)
	if err != nil {
		return fmt.Errorf("get %s --proof: the daemon's bundle: %w", id, err)
	}
	data = append(data, '\n')
	if file == "-" {
		_, err = e.stdout.Write(data)
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("get %s --proof: %w", id, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("get %s --proof: %w", id, err)
	}
	var kinds []string
	for _, p := range b.Proofs {
		kinds = append(kinds, p.Kind)
	}
	_, err = fmt.Fprintf(e.stdout, "evidence of %s written to %s: %s, %d audit records\n", safe(id), file, strings.Join(kinds, ", "), len(b.Audit))
	return err
}
