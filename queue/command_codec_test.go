package queue

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// codecCommands covers every command type and field, nil and empty lists
// and byte strings, and extreme values.
func codecCommands() []Command {
	payload := bytes.Repeat([]byte{0, 1, 0xff}, 200)
	return []Command{
		submitCmd(t1,
			SubmitItem{ID: "0190c6a2-7b3e-7000-8a1b-4c2d3e4f5a6b", Key: "k1", Dest: "bravo", Precedence: Flash, Payload: payload, Flags: FlagDrill, ExpiresAt: t4},
			SubmitItem{ID: "b", Dest: "bravo", Precedence: Routine, Payload: []byte{}},
			SubmitItem{ID: "c", Dest: "charlie", Precedence: Immediate, Flags: math.MaxUint32 >> 1, ExpiresAt: -1},
			SubmitItem{},
			SubmitItem{ID: "d", Dest: "bravo", Precedence: Flash, Payload: []byte("x"), Mailbox: "cert", From: "watch", Type: "application/stix+json;version=2.1"},
			SubmitItem{ID: "e", Dest: "bravo", Precedence: Flash, Payload: []byte("x"), Type: "text/plain"},
		),
		{Op: OpSubmit, Time: math.MinInt64, Submit: &Submit{}},
		{Op: OpSubmit, Time: math.MaxInt64, Submit: &Submit{Origin: "alpha", Items: []SubmitItem{}}},
		deliveredCmd(t2, "bravo", Priority, math.MaxUint64),
		receiveCmd(t3, "alpha", Routine,
			Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 1, Key: "key", Payload: payload, Flags: FlagLinkTest, SubmittedAt: t1, ExpiresAt: t4},
			Message{ID: "m2", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 2, Flags: FlagTombstone, SubmittedAt: -t1},
			Message{ID: "m3", Origin: "other", Dest: "", Precedence: Flash, Seq: math.MaxUint64, Payload: []byte{}},
			Message{},
		),
		receiveCmd(t3, "", Routine, Message{}),
		{Op: OpReceive, Receive: &Receive{Origin: "alpha", Precedence: Immediate}},
		markReadCmd(t4, "a", "", "0190c6a2-7b3e-7000-8a1b-4c2d3e4f5a6b"),
		{Op: OpMarkRead, MarkRead: &MarkRead{}},
		{Op: OpMarkRead, MarkRead: &MarkRead{IDs: []string{}}},
		{Op: OpMarkRead, MarkRead: &MarkRead{IDs: []string{"a", "b"}, By: &Actor{UID: 1001, User: "alice", PID: 42}, Node: "bravo-1", Mailboxes: []string{"", "cert"}}},
		{Op: OpMarkRead, MarkRead: &MarkRead{IDs: []string{"x"}, Mailboxes: []string{}}},
		{Op: OpMarkRead, MarkRead: &MarkRead{IDs: []string{"y"}, Node: "alpha-2"}},
		receiptsCmd(t1, "bravo",
			Receipt{RSeq: 1, Precedence: Flash, Seq: 7, ID: "m7", ReadAt: t1},
			Receipt{RSeq: math.MaxUint64, Precedence: Routine, Seq: 0, ReadAt: math.MinInt64}),
		receiptsCmd(0, "", Receipt{}),
		// Refusals (refuse.go): a refusal receipt, refused messages.
		receiptsCmd(t2, "bravo",
			Receipt{RSeq: 2, Precedence: Priority, Seq: 3, ID: "m3", ReadAt: t2, Refused: `no mailbox "nosuch" here`},
			Receipt{RSeq: 3, Precedence: Flash, Seq: 4, ID: "m4", ReadAt: t2}),
		{Op: OpReceive, Time: t3, Receive: &Receive{Origin: "alpha", Precedence: Routine, Messages: []Message{
			{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 1, Mailbox: "nosuch"},
			{ID: "m2", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 2, Mailbox: "cert"},
			{ID: "m3", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 3, Mailbox: "cert", Type: "text/plain"},
		}, Refused: []Refusal{{0, `no mailbox "nosuch" here`}, {2, `mailbox "cert" does not accept type "text/plain"`}}}},
		{Op: OpReceive, Receive: &Receive{Refused: []Refusal{{7, "index beyond the batch: the apply refuses it"}}}},
		submitCmd(0, SubmitItem{}),
		{Op: OpReceipts, Receipts: &Receipts{}},
		receiptsAckedCmd(t2, "charlie", 300),
		expireCmd(t3),
		purgeCmd(t4, t2, 0),
		purgeCmd(-1, math.MinInt64, math.MaxInt64),
		purgeCmd(0, 0, -7),
		{Op: "launch", Time: 1},
		{},
		{Op: OpExpire, Time: t1, Delivered: &DeliveredCmd{}, ReceiptsAcked: &ReceiptsAcked{}, Purge: &Purge{}}, // several bodies
		// Evidence (version 4): evidence_test.go.
		evReceiveCmd(t2, "statement", 5, 2),
		evReceiptsCmd(t3, "receipt statement", 1, 3, 4),
		{Op: OpDelivered, Time: t4, Delivered: &DeliveredCmd{Dest: "bravo", Precedence: Flash, UpTo: 7,
			Proofs: []DeliveredProof{{Evidence: testEvidence("delivered", 3, 5), Sent: testEvidence("sent", math.MaxUint64, 1)}}}},
		{Op: OpDelivered, Delivered: &DeliveredCmd{Dest: "bravo", UpTo: 1, Proofs: []DeliveredProof{
			{Evidence: testEvidence(string(bytes.Repeat([]byte{0xee}, MaxStatementLen)), 1, 1)}}}},
	}
}

func TestCommandCodecRoundTrip(t *testing.T) {
	for i, c := range codecCommands() {
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("command %d (%s): encode: %v", i, c.Op, err)
		}
		if enc[0] != cmdVersion5 {
			t.Fatalf("command %d: version byte %#x", i, enc[0])
		}
		got, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("command %d (%s): decode: %v", i, c.Op, err)
		}
		// Version 3 does not tell nil from empty: both decode as nil.
		if want := normalized(c); !reflect.DeepEqual(plain(got), want) {
			t.Fatalf("command %d: round trip\n got %+v\nwant %+v", i, *got, want)
		}
		if hint := c.sizeHint(); hint < len(enc) || hint > len(enc)+10 {
			t.Errorf("command %d: size hint %d for %d bytes", i, hint, len(enc))
		}
		again, err := got.Encode()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("command %d: re-encoding differs (%v)", i, err)
		}
		// Entries of version 2, written by the previous version, still
		// decode to exactly what was encoded, nil and empty apart (version
		// 2 had no mailboxes or types).
		if cmdHasAttrs(&c) {
			continue
		}
		v2, err := encodeV2(&c)
		if err != nil {
			t.Fatal(err)
		}
		got, err = DecodeCommand(v2)
		if c := withoutEvidence(c); err != nil || !reflect.DeepEqual(plain(got), c) {
			t.Fatalf("command %d: version 2 round trip: %v\n got %+v\nwant %+v", i, err, got, c)
		}
	}
}

// normalized returns c with every empty list and byte string nil, as
// version 3 decodes them.
func normalized(c Command) Command {
	nilIfEmpty := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	if s := c.Submit; s != nil {
		n := *s
		n.Items = nil
		for _, it := range s.Items {
			it.Payload = nilIfEmpty(it.Payload)
			n.Items = append(n.Items, it)
		}
		c.Submit = &n
	}
	if r := c.Receive; r != nil {
		n := *r
		n.Messages = nil
		for _, m := range r.Messages {
			m.Payload = nilIfEmpty(m.Payload)
			n.Messages = append(n.Messages, m)
		}
		c.Receive = &n
	}
	if mr := c.MarkRead; mr != nil && len(mr.IDs) == 0 {
		c.MarkRead = &MarkRead{By: mr.By, Node: mr.Node, Mailboxes: mr.Mailboxes}
	}
	if r := c.Receipts; r != nil && len(r.Receipts) == 0 {
		c.Receipts = &Receipts{From: r.From}
	}
	return c
}

// TestCommandCodecNilIsEmpty: nil and empty lists and byte strings have
// one encoding.
func TestCommandCodecNilIsEmpty(t *testing.T) {
	pairs := [][2]Command{
		{{Op: OpSubmit, Submit: &Submit{}}, {Op: OpSubmit, Submit: &Submit{Items: []SubmitItem{}}}},
		{submitCmd(t1, SubmitItem{ID: "a"}), submitCmd(t1, SubmitItem{ID: "a", Payload: []byte{}})},
		{{Op: OpMarkRead, MarkRead: &MarkRead{}}, {Op: OpMarkRead, MarkRead: &MarkRead{IDs: []string{}}}},
		{{Op: OpReceipts, Receipts: &Receipts{}}, {Op: OpReceipts, Receipts: &Receipts{Receipts: []Receipt{}}}},
		{receiveCmd(t1, "alpha", Routine), {Op: OpReceive, Time: t1, Receive: &Receive{Origin: "alpha", Precedence: Routine, Messages: []Message{}}}},
	}
	for i, p := range pairs {
		a, err1 := p[0].Encode()
		b, err2 := p[1].Encode()
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("pair %d: %x (%v) and %x (%v)", i, a, err1, b, err2)
		}
	}
}

// TestDecodeCommandDoesNotAlias: the decoded payloads are a copy.
func TestDecodeCommandDoesNotAlias(t *testing.T) {
	enc, err := (&Command{Op: OpSubmit, Submit: &Submit{Items: []SubmitItem{{ID: "a", Payload: []byte("abc")}}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCommand(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 'x'
	}
	if p := c.Submit.Items[0].Payload; string(p) != "abc" || cap(p) != 3 {
		t.Fatalf("payload %q cap %d", p, cap(p))
	}
}

func TestDecodeCommandRejectsTruncatedAndTrailing(t *testing.T) {
	for i, c := range codecCommands() {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(enc) {
			if got, err := DecodeCommand(enc[:n]); err == nil || got != nil {
				t.Fatalf("command %d truncated to %d of %d bytes: %+v, %v", i, n, len(enc), got, err)
			} else if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("command %d truncated: error %v wraps neither ErrInvalid nor ErrCorrupt", i, err)
			}
		}
		if _, err := DecodeCommand(append(enc, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("command %d with a trailing byte: %v", i, err)
		}
		// A trailing byte inside the checksummed body: the structure is checked.
		body := append(bytes.Clone(enc[:len(enc)-cmdSumLen]), 0)
		if _, err := DecodeCommand(be.AppendUint32(body, crc32.Checksum(body, castagnoli))); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("command %d with a trailing byte under its checksum: %v", i, err)
		}
		// Version 1 (no checksum) still checks the structure.
		v2, err := encodeV2(&c)
		if err != nil {
			t.Fatal(err)
		}
		v1 := append([]byte{cmdVersion1}, v2[1:len(v2)-cmdSumLen]...)
		if _, err := DecodeCommand(append(v1, 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
			t.Fatalf("command %d (version 1) with a trailing byte: %v", i, err)
		}
		for n := 1; n < len(v1); n++ {
			if got, err := DecodeCommand(v1[:n]); !errors.Is(err, ErrInvalid) || got != nil {
				t.Fatalf("version 1 command %d truncated to %d bytes: %+v, %v", i, n, got, err)
			}
		}
	}
}

func TestDecodeCommandRejectsMalformed(t *testing.T) {
	v1 := func(b ...byte) []byte { return append([]byte{cmdVersion1}, b...) }
	v3 := func(b ...byte) []byte { return append([]byte{cmdVersion3}, b...) }
	time8 := []byte{0, 0, 0, 0, 0, 0, 0, 0}
	head := func(body byte, rest ...byte) []byte { // op "x", time 0, bodies
		b := v1(1, 'x')
		b = append(b, time8...)
		return append(append(b, body), rest...)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty entry"},
		{"unknown version", []byte{0x80, 0}, "unknown format version 0x80"},
		{"newer version", []byte{7, 0}, "log entry format 7 is newer than this build reads (6)"},
		{"version 2 too short", []byte{cmdVersion2, 0, 0, 0}, "entry of 4 bytes"},
		{"op longer than input", v1(50, 'x'), "beyond the end"},
		{"non-minimal varint", v1(0x81, 0x00, 'x'), "non-minimal"},
		{"varint overflow", v1(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "overflows"},
		{"unknown body", head(0x80), "unknown bodies"},
		{"bad precedence", head(bodyDelivered, 1, 'b', 4, 0), "invalid precedence 4"},
		{"forged item count", head(bodySubmit, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f), "list longer"},
		{"forged payload length", append(head(bodySubmit, 0, 2, 1, 'a', 0, 1, 'b', 0, 0xff, 0xff, 0xff, 0xff, 0x0f), make([]byte, 20)...), "length beyond the end"},
		{"forged id count", head(bodyMarkRead, 0xff, 0xff, 0x03, 1, 'a'), "list longer"},
		{"flags overflow", head(bodySubmit, 0, 2, 1, 'a', 0, 1, 'b', 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0, 0, 0, 0), "flags overflow"},
		{"old json, bad", []byte(`{"op":`), "decode command"},
		// Version 3 (with a valid checksum, added below).
		{"v3 op longer than input", v3(50, 'x'), "beyond the end"},
		{"v3 non-minimal varint", v3(1, 'x', 0x80, 0x00, 0), "non-minimal"},
		{"v3 unknown body", v3(1, 'x', 0, 0x80, 0x80, 0x40), "unknown bodies"}, // bit 20: bits 9 and up are taken
		{"v3 bad precedence", v3(1, 'x', 0, bodyDelivered, 1, 'b', 4, 0), "invalid precedence 4"},
		{"v3 forged item count", v3(1, 'x', 0, bodySubmit, 0, 0xff, 0xff, 0xff, 0xff, 0x0f), "list longer"},
		{"v3 forged payload length", append(v3(1, 'x', 0, bodySubmit, 0, 1, 1, 'a', 0, 1, 'b', 0, 0xff, 0xff, 0xff, 0xff, 0x0f), make([]byte, 20)...), "length beyond the end"},
		{"v3 flags overflow", v3(1, 'x', 0, bodySubmit, 0, 1, 1, 'a', 0, 1, 'b', 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0), "flags overflow"},
		{"v3 varint overflow", v3(1, 'x', 0, bodyPurge, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "overflows"},
		{"v3 trailing", v3(1, 'x', 0, 0, 0), "trailing"},
	}
	for i, tc := range tests {
		if len(tc.in) > 0 && tc.in[0] == cmdVersion3 {
			tests[i].in = be.AppendUint32(tc.in, crc32.Checksum(tc.in, castagnoli))
		}
	}
	for _, tc := range tests {
		if len(tc.in) > 0 && tc.in[0] == cmdVersion1 {
			// The same body with a valid checksum: version 2 checks it too.
			b := append([]byte{cmdVersion2}, tc.in[1:]...)
			tests = append(tests, struct {
				name string
				in   []byte
				want string
			}{tc.name + " (version 2)", be.AppendUint32(b, crc32.Checksum(b, castagnoli)), tc.want})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand(tc.in)
			if err == nil || c != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeCommand = %+v, %v; want error containing %q", c, err, tc.want)
			}
		})
	}
}

// TestDecodeCommandForgedLengthsAllocateLittle: a forged length never
// makes the decoder allocate beyond a small multiple of its input.
func TestDecodeCommandForgedLengthsAllocateLittle(t *testing.T) {
	forged := [][]byte{
		{cmdVersion1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		append([]byte{cmdVersion1, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0, bodySubmit, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 100)...),
		append([]byte{cmdVersion1, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0, bodyReceive, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 100)...),
		append([]byte{cmdVersion1, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0, bodyMarkRead, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 100)...),
	}
	for _, body := range [][]byte{
		{1, 'x', 0, bodySubmit, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'x', 0, bodyReceive, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'x', 0, bodyMarkRead, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'x', 0, bodyReceipts, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		b := append(append([]byte{cmdVersion3}, body...), make([]byte, 100)...)
		forged = append(forged, be.AppendUint32(b, crc32.Checksum(b, castagnoli)))
	}
	for i, in := range forged {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			if _, err := DecodeCommand(in); err == nil {
				t.Fatalf("forged input %d decoded", i)
			}
		}
		runtime.ReadMemStats(&after)
		if perCall := (after.TotalAlloc - before.TotalAlloc) / 100; perCall > 64<<10 {
			t.Fatalf("forged input %d: %d bytes allocated per decode", i, perCall)
		}
	}
}

func TestEncodeRejectsInvalidPrecedence(t *testing.T) {
	bad := Precedence(4)
	for _, c := range []Command{
		submitCmd(t1, item("a", "bravo", bad, "x")),
		deliveredCmd(t1, "bravo", bad, 1),
		receiveCmd(t1, "alpha", bad),
		receiveCmd(t1, "alpha", Routine, Message{ID: "m", Precedence: bad}),
		receiptsCmd(t1, "bravo", Receipt{RSeq: 1, Precedence: bad}),
	} {
		if b, err := c.Encode(); err == nil || !strings.Contains(err.Error(), "invalid precedence 4") {
			t.Errorf("%s with precedence 4: %x, %v", c.Op, b, err)
		}
	}
}

// TestDecodeCommandJSON: entries of the first, JSON, format still decode.
func TestDecodeCommandJSON(t *testing.T) {
	in := `{"op":"submit","time":5,"submit":{"origin":"alpha","items":[{"id":"a","dest":"bravo","precedence":"flash","payload":"aGk="}]}}`
	c, err := DecodeCommand([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Command{Op: OpSubmit, Time: 5, Submit: &Submit{Origin: "alpha", Items: []SubmitItem{{ID: "a", Dest: "bravo", Precedence: Flash, Payload: []byte("hi")}}}}
	if !reflect.DeepEqual(plain(c), want) {
		t.Fatalf("decoded %+v", *c)
	}
	c, err = DecodeCommand([]byte(`{"op":"purge","time":5,"purge":{"before":3,"max":2}}`))
	if err != nil || *c.Purge != (Purge{Before: 3, Max: 2}) {
		t.Fatalf("purge: %+v, %v", c, err)
	}
}

// FuzzDecodeCommand: decoding never panics, and whatever decodes encodes
// again to a command that decodes equal (nil and empty alike); an entry of
// version 5 or 6 re-encodes to the same bytes (the encoding is canonical).
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range codecCommands() {
		enc, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		if v2, err := encodeV2(&c); err == nil {
			f.Add(v2)
		}
	}
	for _, v := range []uint64{1, 2, math.MaxUint64} { // version 6 (siteversion.go)
		c := siteVersionCmd(t1, v)
		enc, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	for _, tc := range badEvidence() { // evidence_test.go
		f.Add(encodeUnchecked(f, tc.cmd))
	}
	f.Add([]byte(`{"op":"receive","receive":{"origin":"a","precedence":"routine","messages":[{"id":"m","seq":1,"payload":""}]}}`))
	f.Add([]byte{})
	f.Add([]byte{cmdVersion1})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			if c != nil {
				t.Fatalf("error %v with a command", err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("decoded command does not encode: %v (%+v)", err, c)
		}
		c2, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if want := normalized(plain(c)); !reflect.DeepEqual(want, plain(c2)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", c, c2)
		}
		if (data[0] == cmdVersion5 || data[0] == cmdVersion6) && !bytes.Equal(enc, data) {
			t.Fatalf("binary entry re-encodes differently:\n%x\n%x", data, enc)
		}
	})
}

// TestDecodeCommandRefusesFlippedBytes: every single-bit flip anywhere in
// an entry is refused as ErrCorrupt, never decoded into another command.
func TestDecodeCommandRefusesFlippedBytes(t *testing.T) {
	for i, c := range codecCommands() {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for pos := 1; pos < len(enc); pos++ { // the version byte: below
			for bit := range 8 {
				b := bytes.Clone(enc)
				b[pos] ^= 1 << bit
				got, err := DecodeCommand(b)
				var ce *CorruptError
				if got != nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), "checksum") {
					t.Fatalf("command %d, byte %d bit %d flipped: %+v, %v", i, pos, bit, got, err)
				}
			}
		}
		for _, v := range []byte{0, cmdVersion1, cmdVersion2, cmdVersion3, cmdVersion4, 6, 0x82, '{'} {
			b := bytes.Clone(enc)
			b[0] = v
			if v == cmdVersion1 {
				// Read as version 1, the checksum is a trailing 4 bytes.
				if _, err := DecodeCommand(b); err == nil {
					t.Fatalf("command %d as version 1 decoded", i)
				}
				continue
			}
			if got, err := DecodeCommand(b); err == nil {
				t.Fatalf("command %d with version byte %#x decoded: %+v", i, v, got)
			}
		}
	}
}

// cmdHasAttrs reports whether c has a message or item with a mailbox,
// sender mailbox or type, or a MarkRead's who and scope, which formats
// before mailboxes cannot hold.
func cmdHasAttrs(c *Command) bool {
	if c.MarkRead.hasBy() {
		return true
	}
	if c.Submit != nil {
		for i := range c.Submit.Items {
			if m := c.Submit.Items[i].attrs(); m.HasAttrs() {
				return true
			}
		}
	}
	if c.Receive != nil {
		if len(c.Receive.Refused) > 0 {
			return true
		}
		for i := range c.Receive.Messages {
			if c.Receive.Messages[i].HasAttrs() {
				return true
			}
		}
	}
	if c.Receipts != nil {
		for i := range c.Receipts.Receipts {
			if c.Receipts.Receipts[i].Refused != "" {
				return true
			}
		}
	}
	return false
}
