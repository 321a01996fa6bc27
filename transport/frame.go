package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/quic-go"
)

// Frame types. The values are part of the wire format.
const (
	frameBatch byte = 1 // request: a Batch
	frameAck   byte = 2 // reply to frameBatch: an Ack
	frameCall  byte = 3 // request: a Call
	frameReply byte = 4 // reply to frameCall: a Reply
	frameProbe byte = 5 // request: a probe (opaque body, at most 64 bytes)
	frameEcho  byte = 6 // reply to frameProbe: the probe's body
)

// maxProbeBody bounds a probe's body.
const maxProbeBody = 64

// headerLen is the frame header: 4-byte big-endian body length, then the
// 1-byte frame type. The length counts the body only.
const headerLen = 5

// QUIC application error codes (connection close) and stream error codes.
const (
	codeClosing      quic.ApplicationErrorCode = 0x0  // the link is shutting down
	codeProtocol     quic.ApplicationErrorCode = 0x10 // malformed, oversize or unexpected frame
	codeForbidden    quic.ApplicationErrorCode = 0x11 // frame contents contradict the peer's identity
	codePathDown     quic.ApplicationErrorCode = 0x12 // probes went unanswered: the path is considered cut
	codePathDisabled quic.ApplicationErrorCode = 0x13 // an operator disabled the path
	codeCancelled    quic.StreamErrorCode      = 0x20 // the requester gave up on the stream
	codeTimeout      quic.StreamErrorCode      = 0x21 // the request did not arrive within its deadline
)

func frameName(t byte) string {
	switch t {
	case frameBatch:
		return "batch"
	case frameAck:
		return "ack"
	case frameCall:
		return "call"
	case frameReply:
		return "reply"
	case frameProbe:
		return "probe"
	case frameEcho:
		return "echo"
	}
	return fmt.Sprintf("type %d", t)
}

// violation is a peer breaking the protocol: the connection is closed with
// code. Errors of this type never come from I/O.
type violation struct {
	code quic.ApplicationErrorCode
	msg  string
}

func (v *violation) Error() string { return v.msg }

func protocolErr(format string, args ...any) error {
	return &violation{code: codeProtocol, msg: fmt.Sprintf(format, args...)}
}

func forbiddenErr(format string, args ...any) error {
	return &violation{code: codeForbidden, msg: fmt.Sprintf(format, args...)}
}

// asViolation returns err's violation, if it is one.
func asViolation(err error) (*violation, bool) {
	var v *violation
	ok := errors.As(err, &v)
	return v, ok
}

// newFrame returns a buffer with room for the header, to append a body to.
func newFrame(sizeHint int) []byte {
	return make([]byte, headerLen, headerLen+sizeHint)
}

// sealFrame fills in the header of a buffer made by newFrame. It fails with
// ErrTooLarge when the body exceeds max.
func sealFrame(buf []byte, typ byte, max int) ([]byte, error) {
	n := len(buf) - headerLen
	if n > max {
		return nil, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrTooLarge, frameName(typ), n, max)
	}
	binary.BigEndian.PutUint32(buf, uint32(n))
	buf[4] = typ
	return buf, nil
}

// readFrame reads one frame of a known type no larger than max, growing
// its buffer as the body arrives (readHeader, readBody). I/O errors are
// returned as they are; everything else is a protocol violation.
func readFrame(r io.Reader, max int) (typ byte, body []byte, err error) {
	typ, n, err := readHeader(r, max)
	if err != nil {
		return 0, nil, err
	}
	body, err = readBody(r, typ, n)
	if err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// readHeader reads a frame header and checks its type and that the body
// length n is at most max.
func readHeader(r io.Reader, max int) (typ byte, n int, err error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, 0, protocolErr("truncated frame header")
		}
		return 0, 0, err
	}
	size := binary.BigEndian.Uint32(h[:4])
	typ = h[4]
	if typ < frameBatch || typ > frameEcho {
		return 0, 0, protocolErr("unknown frame type %d", typ)
	}
	if uint64(size) > uint64(max) {
		return 0, 0, protocolErr("%s frame of %d bytes exceeds the limit of %d", frameName(typ), size, max)
	}
	return typ, int(size), nil
}

// firstChunk is the buffer readBody starts with; it doubles as bytes
// arrive.
const firstChunk = 64 << 10

// readBody reads a body of exactly n bytes. The buffer starts at
// firstChunk and doubles only when full, so the claimed length alone never
// allocates more than firstChunk: a body costs at most twice the bytes
// that actually arrived, and its final buffer is exactly n bytes.
func readBody(r io.Reader, typ byte, n int) ([]byte, error) {
	body := make([]byte, 0, min(n, firstChunk))
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(2*cap(body), n))
			copy(grown, body)
			body = grown
		}
		m, err := r.Read(body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil && len(body) < n {
			if errors.Is(err, io.EOF) {
				return nil, protocolErr("truncated %s frame (%d of %d bytes)", frameName(typ), len(body), n)
			}
			return nil, err
		}
	}
	return body, nil
}

// readEOF checks that the sender closed the stream right after its frame:
// one frame per direction per stream.
func readEOF(r io.Reader) error {
	var b [1]byte
	n, err := r.Read(b[:])
	for n == 0 && err == nil {
		n, err = r.Read(b[:])
	}
	if n > 0 {
		return protocolErr("data after the frame")
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
