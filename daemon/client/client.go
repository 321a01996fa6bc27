package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// baseURL is the fixed URL prefix of every request; the host is never
// resolved, the transport always dials the Unix socket.
const baseURL = "http://hotline"

// maxErrorBody bounds how much of an error reply is read.
const maxErrorBody = 64 << 10

// ErrUnreachable is matched (errors.Is) by every error that means the
// daemon's socket could not be connected to.
var ErrUnreachable = errors.New("client: hotlined unreachable")

// Client talks to one hotlined over its Unix socket. It is safe for
// concurrent use by many goroutines.
type Client struct {
	socket string
	hc     *http.Client
}

// New returns a client for the daemon listening on the Unix socket at
// path socket. It does not connect until the first call.
func New(socket string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client dials.
func (c *Client) Socket() string { return c.socket }

// CloseIdleConnections closes the client's idle connections.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// APIError is a non-2xx reply of the daemon.
type APIError struct {
	Status  int    // HTTP status
	Code    string // one of the Code* constants; "" when the reply had none
	Message string // the daemon's explanation
	// ID is set on a failed submit whose outcome is unknown (no_quorum):
	// the id the message was given, under which it may have been stored.
	ID string
}

// Error returns the daemon's message with its code.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("hotlined: %s (HTTP %d)", e.Message, e.Status)
	}
	return fmt.Sprintf("hotlined: %s (%s)", e.Message, e.Code)
}

// IsCode reports whether err is (or wraps) an [*APIError] with the given
// code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// Retryable reports whether err is worth retrying with the same request
// (and the same idempotency key): the daemon could not be reached, the
// connection broke, or it answered 503 (no quorum, starting, stopping).
// Context errors are not retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusServiceUnavailable
	}
	return true
}

// UnreachableError means the daemon's socket could not be connected to.
// It matches [ErrUnreachable] and unwraps to the dial error.
type UnreachableError struct {
	Socket string
	Err    error
}

// Error names the socket and the dial error.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach hotlined at %s: %v", e.Socket, e.Err)
}

// Unwrap returns ErrUnreachable and the dial error.
func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// do sends one request and decodes a 2xx JSON reply into out (when out is
// not nil). It returns the reply's status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, out any) (int, error) {
	u := baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, c.transportError(ctx, method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return resp.StatusCode, fmt.Errorf("client: %s %s: %w", method, path, ctx.Err())
		}
		return resp.StatusCode, fmt.Errorf("client: %s %s: decode reply from hotlined at %s: %w", method, path, c.socket, err)
	}
	return resp.StatusCode, nil
}

// transportError classifies an error of http.Client.Do.
func (c *Client) transportError(ctx context.Context, method, path string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, ctxErr)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &UnreachableError{Socket: c.socket, Err: op}
	}
	// Strip the url.Error wrapper: its URL (http://hotline/...) says
	// nothing useful, the socket does.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("client: %s %s: hotlined at %s: %w", method, path, c.socket, err)
}

// decodeError turns a non-2xx reply into an *APIError.
func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &APIError{Status: resp.StatusCode, ID: resp.Header.Get(HeaderMessageID)}
	var body Error
	if err := json.Unmarshal(raw, &body); err == nil && (body.Error != "" || body.Code != "") {
		ae.Code = body.Code
		ae.Message = body.Error
	} else {
		ae.Message = strings.TrimSpace(string(raw))
	}
	if ae.Message == "" {
		ae.Message = http.StatusText(resp.StatusCode)
	}
	return ae
}

// jsonBody encodes v for a request body.
func jsonBody(v any) (io.Reader, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}
