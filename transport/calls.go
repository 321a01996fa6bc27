package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/hotline-link/hotline/transport/pki"
)

// Scope says from which side of the site boundary a call may come. Every
// operation a node serves is registered with one (Routes.Handle), and the
// Link refuses a call from the other side before any handler runs.
type Scope uint8

// Scopes. The zero Scope is invalid.
const (
	// SiteInternal calls come from the other nodes of our own site:
	// relays to the leader, admin requests, read index, barriers.
	SiteInternal Scope = 1
	// InterSite calls come from the nodes of other sites: link tests,
	// drill queries.
	InterSite Scope = 2
)

func (s Scope) String() string {
	switch s {
	case SiteInternal:
		return "site-internal"
	case InterSite:
		return "inter-site"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Errors of call routing, sent back with their codes (CodeUnknownCall,
// CodeCallScope) so that the caller's Codes.Err rebuilds them.
var (
	// ErrUnknownCall: the called node serves no operation of that name.
	ErrUnknownCall = errors.New("transport: unknown call")
	// ErrCallScope: the operation may not be called from the caller's
	// side (a site-internal call from another site, or the reverse).
	ErrCallScope = errors.New("transport: call from the wrong side of the site boundary")
)

// Codes of the routing errors in Reply.Code.
const (
	CodeUnknownCall = "unknown_call"
	CodeCallScope   = "call_scope"
)

// CallHandler serves one call operation: body is the Call's, and the
// returned bytes become the Reply's Body. A returned error travels back as
// Reply.Error (its text), Reply.Code (the code the Routes' Codes give it)
// and Reply.Leader (the Routes' leader hint). It is called concurrently,
// one goroutine per call; ctx ends when the caller gives up, the
// connection dies, the Link closes or Config.HandlerTimeout passes.
type CallHandler func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error)

type route struct {
	scope Scope
	h     CallHandler
}

// Routes is the table of the calls a node serves: each operation with the
// scope it may be called from and its handler, and the error codes its
// replies carry. Build it with NewRoutes and Handle before the Link starts
// (Config.Calls); it is read-only afterwards and safe for concurrent use.
type Routes struct {
	codes  *Codes
	leader func() string
	ops    map[string]route
}

// NewRoutes returns an empty table. codes (nil: only the transport's own)
// names the errors of the replies; leader, if not nil, gives the hint
// every error reply carries in Reply.Leader: the site's leader as this
// node knows it, "" if unknown.
func NewRoutes(codes *Codes, leader func() string) *Routes {
	if codes == nil {
		codes = NewCodes()
	}
	return &Routes{codes: codes, leader: leader, ops: make(map[string]route)}
}

// Handle registers op with the scope it may be called from and its
// handler. It panics on an empty or duplicate op, an invalid scope or a
// nil handler: these are programming errors, found at startup.
func (r *Routes) Handle(op string, scope Scope, h CallHandler) {
	switch {
	case op == "":
		panic("transport: Routes.Handle: empty op")
	case scope != SiteInternal && scope != InterSite:
		panic(fmt.Sprintf("transport: Routes.Handle(%q): invalid %v", op, scope))
	case h == nil:
		panic(fmt.Sprintf("transport: Routes.Handle(%q): nil handler", op))
	}
	if _, dup := r.ops[op]; dup {
		panic(fmt.Sprintf("transport: Routes.Handle(%q): registered twice", op))
	}
	r.ops[op] = route{scope: scope, h: h}
}

// Serve answers c from the peer from, for a node of site. An unknown op,
// or one from the wrong side of the site boundary, is refused here, with
// an error naming the op and its scope (ErrUnknownCall, ErrCallScope);
// otherwise the op's handler answers. A nil Routes serves nothing. The
// Link calls Serve for every call it receives; tests may call it directly.
func (r *Routes) Serve(ctx context.Context, site string, from pki.Identity, c *Call) *Reply {
	var rt route
	ok := false
	if r != nil {
		rt, ok = r.ops[c.Op]
	}
	side := InterSite
	if from.Site == site {
		side = SiteInternal
	}
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("%w %q (site %s serves no such call)", ErrUnknownCall, c.Op, site)
	case rt.scope != side && rt.scope == SiteInternal:
		err = fmt.Errorf("%w: call %q is site-internal: for nodes of site %s only, and %s is of site %s", ErrCallScope, c.Op, site, from, from.Site)
	case rt.scope != side:
		err = fmt.Errorf("%w: call %q is inter-site: for nodes of other sites only, and %s is a node of site %s", ErrCallScope, c.Op, from, site)
	default:
		var body []byte
		if body, err = rt.h(ctx, from, c.Body); err == nil {
			return &Reply{Body: body}
		}
	}
	return r.errReply(err)
}

// refusal is the Ack refusing a batch for err, coded like a reply.
func (r *Routes) refusal(err error) *Ack {
	rep := r.errReply(err)
	return &Ack{Error: rep.Error, Code: rep.Code, Leader: rep.Leader}
}

func (r *Routes) errReply(err error) *Reply {
	rep := &Reply{Error: errorText(err)}
	if r == nil {
		rep.Code = NewCodes().Code(err)
		return rep
	}
	rep.Code = r.codes.Code(err)
	if r.leader != nil {
		rep.Leader = r.leader()
	}
	return rep
}

// Codes is a table of the sentinel errors that keep their identity across
// a call or a batch: the server sends the code of a handler's error
// (Reply.Code, Ack.Code), the caller rebuilds an error that wraps the same
// sentinel (Err, Ack.Err), so that errors.Is works on the far side. Both ends run the same table. Fill it
// with Add before use; it is read-only afterwards.
type Codes struct {
	list []codeEntry
}

type codeEntry struct {
	code string
	err  error
}

// NewCodes returns a table holding the transport's own codes
// (CodeUnknownCall, CodeCallScope).
func NewCodes() *Codes {
	c := &Codes{}
	c.Add(CodeUnknownCall, ErrUnknownCall)
	c.Add(CodeCallScope, ErrCallScope)
	return c
}

// Add registers code for the errors that wrap sentinel. An error that
// wraps several registered sentinels gets the code added first, so add
// the more specific ones first. It panics on an empty or duplicate code
// or a nil sentinel.
func (c *Codes) Add(code string, sentinel error) {
	if code == "" || sentinel == nil {
		panic("transport: Codes.Add: empty code or nil sentinel")
	}
	for _, e := range c.list {
		if e.code == code {
			panic(fmt.Sprintf("transport: Codes.Add(%q): added twice", code))
		}
	}
	c.list = append(c.list, codeEntry{code, sentinel})
}

// Code returns the code of err: that of the first sentinel it wraps, ""
// if none.
func (c *Codes) Code(err error) string {
	for _, e := range c.list {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return ""
}

// Err returns nil if rep reports success, else a *CallError with rep's
// text, code and leader hint, wrapping the sentinel of rep's code (none if
// the code is "" or unknown here: a peer of another version).
func (c *Codes) Err(op string, rep *Reply) error {
	if rep.Error == "" {
		return nil
	}
	return &CallError{Op: op, Code: rep.Code, Leader: rep.Leader, Msg: rep.Error, kind: c.sentinel(rep.Code)}
}

// sentinel returns the sentinel of code, nil if code is "" or not in c.
func (c *Codes) sentinel(code string) error {
	if code == "" {
		return nil
	}
	for _, e := range c.list {
		if e.code == code {
			return e.err
		}
	}
	return nil
}

// Refusal returns an Ack that refuses a batch for err: err's text, the
// code c gives it (Ack.Err rebuilds the error on the sender's side) and
// leader, the refusing node's hint of its site's leader.
func (c *Codes) Refusal(err error, leader string) *Ack {
	return &Ack{Error: errorText(err), Code: c.Code(err), Leader: leader}
}

// CallError is a call that the called node answered with an error, or a
// batch that the receiving node refused (Op "batch", from Ack.Err): its
// message, code and leader hint as sent. errors.Is matches the sentinel
// its code stands for in the caller's Codes.
type CallError struct {
	Op     string // the call's operation; "batch" for a refused batch
	Code   string // the kind of error ("" if the server named none)
	Leader string // the server's hint: its site's leader, "" if unknown
	Msg    string // the server's error text
	kind   error
}

func (e *CallError) Error() string { return e.Msg }

// Unwrap returns the sentinel of e's code, nil if there is none.
func (e *CallError) Unwrap() error { return e.kind }
