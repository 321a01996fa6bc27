package ctl

import (
	"errors"

	"github.com/hotline-link/hotline/daemon/client"
)

// adviceError adds what the user of hotlinectl can do about err, in
// hotlinectl's terms (its flags and environment). The client package's
// errors carry no such advice: its callers are programs with their own
// configuration.
type adviceError struct {
	err    error
	advice string
}

func (a *adviceError) Error() string { return a.err.Error() + " (" + a.advice + ")" }
func (a *adviceError) Unwrap() error { return a.err }

// withAdvice returns err with hotlinectl's advice added where there is
// some; errors.Is and errors.As see through it.
func withAdvice(err error) error {
	if errors.Is(err, client.ErrUnreachable) {
		return &adviceError{err, "is hotlined running? set --socket or $" + EnvSocket}
	}
	return err
}
