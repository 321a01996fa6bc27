package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// The mailbox exchange: every node asks every other site for its mailbox
// list (callMailboxes) when it starts and then every
// mailboxExchangeInterval, and keeps the answers in Node.remote. Any node
// of a site answers, from its own config. The origin refuses a message
// to a mailbox its destination does not have, or of a type the mailbox
// does not take, once it knows the destination's list (refuse); until
// then the destination decides.

// callMailboxes is the inter-site call that asks a site for its mailbox
// list: no body; reply a mailboxList.
const callMailboxes = "mailboxes"

// mailboxList is a site's answer to callMailboxes.
type mailboxList struct {
	Mailboxes []mailboxInfo `json:"mailboxes"`
}

// mailboxInfo is one mailbox of a mailboxList: its name ("default" for
// the default mailbox), the media types it takes (none: any) and its
// read objectives by precedence name, as Go durations.
type mailboxInfo struct {
	Name       string            `json:"name"`
	Types      []string          `json:"types,omitempty"`
	Objectives map[string]string `json:"objectives,omitempty"`
}

// Bounds of a mailbox list another site may send.
const (
	maxMailboxListSize = 1 << 20
	maxRemoteMailboxes = 1024
	maxRemoteTypes     = 64
)

// mailboxExchangeInterval is how often a node asks the other sites for
// their lists once it knows them all; while a site has not answered yet
// they are asked again sooner (from 1s, doubling up to
// mailboxExchangeRetry), so that a node learns a site's list soon after
// that site starts.
const (
	mailboxExchangeInterval = 30 * time.Second
	mailboxExchangeRetry    = 5 * time.Second
)

// mailboxCallTimeout bounds one call of the exchange.
const mailboxCallTimeout = 10 * time.Second

// siteCaller is what the exchange needs of the link.
type siteCaller interface {
	CallSite(ctx context.Context, site, path string, c *transport.Call) (*transport.Reply, string, error)
}

// mailboxExchange asks the other sites for their mailbox lists and fills
// remote. Its run loop is one goroutine per node; mu guards what it last
// logged of each site, so that it logs a list once, when it changes.
type mailboxExchange struct {
	site   string   // ours
	sites  []string // the other sites
	link   siteCaller
	remote *remoteMailboxes
	log    *slog.Logger

	mu     sync.Mutex
	logged map[string]string // site -> the list as last logged
	bad    map[string]string // site -> the last error logged for it
}

func newMailboxExchange(cfg *Config, link siteCaller, remote *remoteMailboxes, log *slog.Logger) *mailboxExchange {
	return &mailboxExchange{site: cfg.Site, sites: cfg.remoteSites(), link: link, remote: remote, log: log,
		logged: map[string]string{}, bad: map[string]string{}}
}

// run asks every other site at once, then again every
// mailboxExchangeInterval (sooner while a site is not known), until ctx
// ends.
func (x *mailboxExchange) run(ctx context.Context) {
	retry := time.Second
	for {
		next := mailboxExchangeInterval
		if !x.askAll(ctx) {
			next, retry = retry, min(2*retry, mailboxExchangeRetry)
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// askAll asks every other site for its list, at once, and reports
// whether every site's list is known after it.
func (x *mailboxExchange) askAll(ctx context.Context) bool {
	var wg sync.WaitGroup
	for _, site := range x.sites {
		wg.Go(func() { x.ask(ctx, site) })
	}
	wg.Wait()
	for _, site := range x.sites {
		if !x.remote.known(site) {
			return false
		}
	}
	return true
}

// ask asks site for its list and, if it answers with a valid one, keeps
// it. A site that does not answer keeps the list it sent last.
func (x *mailboxExchange) ask(ctx context.Context, site string) {
	cctx, cancel := context.WithTimeout(ctx, mailboxCallTimeout)
	defer cancel()
	rep, _, err := x.link.CallSite(cctx, site, "", &transport.Call{Op: callMailboxes})
	if err == nil {
		err = callCodes.Err(callMailboxes, rep)
	}
	if err != nil {
		if ctx.Err() == nil {
			x.log.Debug("asking for a site's mailbox list failed; will retry", "site", site, "err", err)
		}
		return
	}
	boxes, err := decodeMailboxList(rep.Body)
	if err != nil {
		x.mu.Lock()
		again := x.bad[site] == err.Error()
		x.bad[site] = err.Error()
		x.mu.Unlock()
		if !again {
			x.log.Warn("another site sent a mailbox list that is not valid; keeping the one before", "site", site, "err", err)
		}
		return
	}
	x.remote.set(site, boxes)
	words := describeMailboxes(boxes)
	x.mu.Lock()
	before, seen := x.logged[site]
	x.logged[site] = words
	delete(x.bad, site)
	x.mu.Unlock()
	switch {
	case !seen:
		x.log.Info("learned another site's mailboxes", "site", site, "mailboxes", words)
	case before != words:
		x.log.Info("another site's mailbox list changed", "site", site, "mailboxes", words, "before", before)
	}
}

// serveMailboxes answers callMailboxes with this site's list, from cfg.
func serveMailboxes(cfg *Config) ([]byte, error) {
	m := cfg.mailboxes()
	var list mailboxList
	for _, name := range m.names {
		mb := m.get(storedMailbox(name))
		info := mailboxInfo{Name: name, Types: mb.cfg.Types, Objectives: map[string]string{}}
		for _, p := range queue.Precedences {
			info.Objectives[p.String()] = mb.objectives[p].String()
		}
		list.Mailboxes = append(list.Mailboxes, info)
	}
	return json.Marshal(&list)
}

// decodeMailboxList checks another site's list and turns it into
// remoteMailboxes. Every name, type and objective must be valid, and the
// list within bounds, and name the default mailbox, which every site
// has: nothing of a list that is not is kept.
func decodeMailboxList(body []byte) ([]remoteMailbox, error) {
	if len(body) > maxMailboxListSize {
		return nil, fmt.Errorf("list of %d bytes (at most %d)", len(body), maxMailboxListSize)
	}
	var list mailboxList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("list: %v", err)
	}
	if len(list.Mailboxes) > maxRemoteMailboxes {
		return nil, fmt.Errorf("%d mailboxes (at most %d)", len(list.Mailboxes), maxRemoteMailboxes)
	}
	out := make([]remoteMailbox, 0, len(list.Mailboxes))
	seen := map[string]bool{}
	for _, info := range list.Mailboxes {
		name, err := parseMailbox(info.Name)
		if err != nil || info.Name == "" {
			return nil, fmt.Errorf("mailbox %q: not a valid name", info.Name)
		}
		if seen[name] {
			return nil, fmt.Errorf("mailbox %q listed twice", info.Name)
		}
		seen[name] = true
		rb := remoteMailbox{Name: name}
		if len(info.Types) > maxRemoteTypes {
			return nil, fmt.Errorf("mailbox %q: %d types (at most %d)", info.Name, len(info.Types), maxRemoteTypes)
		}
		for _, t := range info.Types {
			if t == "" || queue.ValidType(t) != nil {
				return nil, fmt.Errorf("mailbox %q: type %q is not a valid media type", info.Name, t)
			}
		}
		rb.Types = slices.Clone(info.Types)
		if len(info.Objectives) > len(queue.Precedences) {
			return nil, fmt.Errorf("mailbox %q: %d objectives (one per precedence at most)", info.Name, len(info.Objectives))
		}
		for pn, ds := range info.Objectives {
			p, err := queue.ParsePrecedence(pn)
			if err != nil || pn == "" {
				return nil, fmt.Errorf("mailbox %q: objective of %q, not a precedence", info.Name, pn)
			}
			d, err := time.ParseDuration(ds)
			if err != nil || d < time.Second || d > 30*24*time.Hour {
				return nil, fmt.Errorf("mailbox %q: objective %s = %q is not a duration from 1s to 720h", info.Name, pn, ds)
			}
			rb.Objectives[p] = d
		}
		out = append(out, rb)
	}
	if !seen[""] { // every site has it (newMailboxes)
		return nil, fmt.Errorf("no mailbox %q", queue.DefaultMailbox)
	}
	return out, nil
}

// describeMailboxes words a list for the log: "cert (types: a, b),
// watch".
func describeMailboxes(boxes []remoteMailbox) string {
	var parts []string
	for _, b := range boxes {
		s := queue.MailboxName(b.Name)
		if len(b.Types) > 0 {
			s += " (types: " + strings.Join(b.Types, ", ") + ")"
		}
		var obj []string
		for _, p := range queue.Precedences {
			if d := b.Objectives[p]; d > 0 && d != defaultObjectives[p] {
				obj = append(obj, p.String()+" "+d.String())
			}
		}
		if len(obj) > 0 {
			s += " (objectives: " + strings.Join(obj, ", ") + ")"
		}
		parts = append(parts, s)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// known reports whether site's list is known.
func (r *remoteMailboxes) known(site string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.sites[site]
	return ok
}

// names returns site's mailbox names (display form), sorted.
func (r *remoteMailboxes) names(site string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name := range r.sites[site] {
		out = append(out, queue.MailboxName(name))
	}
	slices.Sort(out)
	return out
}

// refuse checks a message to site's mailbox (stored name) of media type
// mtype ("" application/octet-stream) against site's list. It returns
// "" when the list is not known (the destination decides) or the mailbox
// takes the message; else the API error code (client.CodeUnknownMailbox,
// client.CodeTypeNotAllowed) and why.
func (r *remoteMailboxes) refuse(site, name, mtype string) (code, msg string) {
	mb, known := r.lookup(site, name)
	switch {
	case !known:
		return "", ""
	case mb == nil:
		return client.CodeUnknownMailbox, fmt.Sprintf("site %s has no mailbox %q (its mailboxes: %s)",
			site, queue.MailboxName(name), strings.Join(r.names(site), ", "))
	case len(mb.Types) == 0:
		return "", ""
	}
	t := mtype
	if t == "" {
		t = "application/octet-stream"
	}
	if slices.ContainsFunc(mb.Types, func(a string) bool { return sameMediaType(a, t) }) {
		return "", ""
	}
	return client.CodeTypeNotAllowed, fmt.Sprintf("mailbox %s/%s does not take type %q (it takes: %s)",
		site, queue.MailboxName(name), t, strings.Join(mb.Types, ", "))
}
