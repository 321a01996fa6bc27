package daemon

import "github.com/hotline-link/hotline/transport"

// AckErr is the error a batch's ack stands for, with the daemon's codes
// (what a forwarder of the sending site sees).
func AckErr(a *transport.Ack) error { return a.Err(callCodes) }
