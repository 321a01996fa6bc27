package queue

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// encodeV2 writes c in log format version 2, which this version only
// reads (command_legacy.go): the tests' source of such entries. It is the
// encoder of the version that wrote them.
func encodeV2(c *Command) ([]byte, error) {
	e := encoder1{b: []byte{cmdVersion2}}
	e.str(string(c.Op))
	e.i64(c.Time)
	var bodies byte
	for i, present := range []bool{c.Submit != nil, c.Delivered != nil, c.Receive != nil,
		c.MarkRead != nil, c.Receipts != nil, c.ReceiptsAcked != nil, c.Purge != nil} {
		if present {
			bodies |= 1 << i
		}
	}
	e.b = append(e.b, bodies)
	if s := c.Submit; s != nil {
		e.str(s.Origin)
		e.list(len(s.Items), s.Items == nil)
		for i := range s.Items {
			it := &s.Items[i]
			e.str(it.ID)
			e.str(it.Key)
			e.str(it.Dest)
			e.prec(it.Precedence)
			e.bytes(it.Payload)
			e.uvarint(uint64(it.Flags))
			e.i64(it.ExpiresAt)
		}
	}
	if d := c.Delivered; d != nil {
		e.str(d.Dest)
		e.prec(d.Precedence)
		e.uvarint(d.UpTo)
	}
	if r := c.Receive; r != nil {
		e.str(r.Origin)
		e.prec(r.Precedence)
		e.list(len(r.Messages), r.Messages == nil)
		for i := range r.Messages {
			m := &r.Messages[i]
			e.str(m.ID)
			e.str(m.Origin)
			e.str(m.Dest)
			e.prec(m.Precedence)
			e.uvarint(m.Seq)
			e.str(m.Key)
			e.bytes(m.Payload)
			e.uvarint(uint64(m.Flags))
			e.i64(m.SubmittedAt)
			e.i64(m.ExpiresAt)
		}
	}
	if mr := c.MarkRead; mr != nil {
		e.list(len(mr.IDs), mr.IDs == nil)
		for _, id := range mr.IDs {
			e.str(id)
		}
	}
	if r := c.Receipts; r != nil {
		e.str(r.From)
		e.list(len(r.Receipts), r.Receipts == nil)
		for _, rc := range r.Receipts {
			e.uvarint(rc.RSeq)
			e.prec(rc.Precedence)
			e.uvarint(rc.Seq)
			e.str(rc.ID)
			e.i64(rc.ReadAt)
		}
	}
	if ra := c.ReceiptsAcked; ra != nil {
		e.str(ra.Origin)
		e.uvarint(ra.UpTo)
	}
	if p := c.Purge; p != nil {
		e.i64(p.Before)
		e.b = binary.AppendVarint(e.b, int64(p.Max))
	}
	if e.err != nil {
		return nil, fmt.Errorf("encode %s command as version 2: %w", c.Op, e.err)
	}
	return be.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli)), nil
}

// encoder1 appends the body of version 1 and 2; the first invalid value
// sets err.
type encoder1 struct {
	b   []byte
	err error
}

func (e *encoder1) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder1) i64(v int64) { e.b = be.AppendUint64(e.b, uint64(v)) }

func (e *encoder1) str(s string) { e.b = AppendString(e.b, s) }

func (e *encoder1) bytes(b []byte) {
	if b == nil {
		e.b = append(e.b, 0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	e.b = append(e.b, b...)
}

func (e *encoder1) list(n int, isNil bool) {
	if isNil {
		e.b = append(e.b, 0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder1) prec(p Precedence) {
	if !p.Valid() && e.err == nil {
		e.err = fmt.Errorf("invalid precedence %d", uint8(p))
	}
	e.b = append(e.b, byte(p))
}

// TestLogFormatsApplyAlike: a log written in version 2 (by the previous
// version) and the same log in the current version give byte-identical
// stores but for the audit log, which only current entries append to:
// old entries append nothing, as the build that wrote them did.
func TestLogFormatsApplyAlike(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		entries := script(t, seed, 300)
		old := make([]Entry, len(entries))
		converted := 0
		for i, e := range entries {
			old[i] = e
			c, err := DecodeCommand(e.Data)
			if err != nil {
				continue // the script's undecodable entries stay as they are
			}
			if old[i].Data, err = encodeV2(c); err != nil {
				t.Fatal(err)
			}
			converted++
		}
		s3, _ := openStore(t, "alpha")
		s2, _ := openStore(t, "alpha")
		s3.Apply(entries)
		s2.Apply(old)
		if converted < 250 {
			t.Fatalf("seed %d: only %d entries in version 2", seed, converted)
		}
		assertSameRaw(t, withoutAudit(rawDump(t, s3)), withoutAudit(rawDump(t, s2)))
		if n2, n3 := s2.AuditSize(), s3.AuditSize(); n2 != 0 || n3 == 0 {
			t.Fatalf("seed %d: old entries left %d audit records, new ones %d", seed, n2, n3)
		}
	}
}

// withoutAudit drops the audit log's buckets and size from a rawDump.
func withoutAudit(dump []string) []string {
	var out []string
	size := string(bucketMeta) + "/" + hex.EncodeToString(metaAuditSize) + "="
	for _, l := range dump {
		if !strings.HasPrefix(l, "audit") && !strings.HasPrefix(l, size) {
			out = append(out, l)
		}
	}
	return out
}
