package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// TestMailboxConfig: [[mailboxes]] tables load, resolve user and group
// names, and refuse what is wrong with an error naming file, line and key.
func TestMailboxConfig(t *testing.T) {
	tests := []struct {
		name, tables, want string
	}{
		{"good", `[[mailboxes]]
name = "cert"
send = ["user:root", "group:root", "uid:1001", "gid:1001"]
read = ["*"]
ack = ["group:root"]
types = ["application/stix+json;version=2.1"]
objectives = { flash = "5m" }
`, ""},
		{"no name", "[[mailboxes]]\nsend = [\"*\"]\n", `mailboxes[0].name: is required`},
		{"bad name", "[[mailboxes]]\nname = \"CERT\"\n", `mailboxes[0].name:`},
		{"twice", "[[mailboxes]]\nname = \"cert\"\n[[mailboxes]]\nname = \"cert\"\n", `mailboxes[1].name: mailbox "cert" is configured twice`},
		{"unknown user", "[[mailboxes]]\nname = \"cert\"\nread = [\"user:no-such-user-hl\"]\n", `mailboxes[0].read: "user:no-such-user-hl": no such user`},
		{"unknown group", "[[mailboxes]]\nname = \"cert\"\nack = [\"group:no-such-group-hl\"]\n", `mailboxes[0].ack: "group:no-such-group-hl": no such group`},
		{"bad principal", "[[mailboxes]]\nname = \"cert\"\nsend = [\"alice\"]\n", `mailboxes[0].send: "alice" is not`},
		{"bad type", "[[mailboxes]]\nname = \"cert\"\ntypes = [\"stix\"]\n", `mailboxes[0].types:`},
		{"bad objective", "[[mailboxes]]\nname = \"cert\"\nobjectives = { urgent = \"5m\" }\n", `mailboxes[0].objectives: "urgent" is not`},
		{"short objective", "[[mailboxes]]\nname = \"cert\"\nobjectives = { flash = \"10ms\" }\n", `mailboxes[0].objectives.flash: 10ms is out of range`},
		{"release without releasers", "[[mailboxes]]\nname = \"cert\"\nrelease = true\n", `mailboxes[0].releasers:`},
		{"spool without destination", "[[mailboxes]]\nname = \"cert\"\nspool_out = \"out\"\n", `mailboxes[0].spool_to:`},
		{"spool to this site", "[[mailboxes]]\nname = \"cert\"\nspool_out = \"out\"\nspool_to = \"alpha/cert\"\n", `mailboxes[0].spool_to: "alpha" is not another configured site`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "n.toml")
			if err := os.WriteFile(f, []byte(goodConfig+tt.tables), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(f)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				mb := c.mailboxes().get("cert")
				if mb == nil || mb.objectives[queue.Flash] != 5*time.Minute || mb.objectives[queue.Routine] != defaultObjectives[queue.Routine] {
					t.Fatalf("cert mailbox %+v: want flash objective 5m, the others the defaults", mb)
				}
				if c.mailboxes().get("") == nil || c.mailboxes().defaultConfigured {
					t.Fatal("the default mailbox must exist, unconfigured")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), f+":") {
				t.Fatalf("error %v, want one naming %s:LINE and containing %q", err, f, tt.want)
			}
		})
	}
}

// TestMailboxRights: who may do what, by uid, primary gid and
// supplementary groups; root always; "*" every caller; an unconfigured
// mailbox root only; the 403 message names the mailbox and the right.
func TestMailboxRights(t *testing.T) {
	m, err := newMailboxes([]MailboxConfig{
		{Name: "cert", Send: []string{"uid:1001"}, Read: []string{"gid:2000"}, Ack: []string{"gid:3000"}},
		{Name: "default", Read: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := &callerID{cred: &syscall.Ucred{Uid: 1001, Gid: 2000}, groups: []uint32{2000, 3000}}
	bob := &callerID{cred: &syscall.Ucred{Uid: 1002, Gid: 1002}, groups: []uint32{1002, 3000}}
	root := &callerID{cred: &syscall.Ucred{Uid: 0, Gid: 0}}
	nobody := &callerID{}
	for _, tc := range []struct {
		who  *callerID
		box  string
		r    Right
		want bool
	}{
		{alice, "cert", RightSend, true}, {alice, "cert", RightRead, true}, {alice, "cert", RightAck, true},
		{bob, "cert", RightSend, false}, {bob, "cert", RightRead, false}, {bob, "cert", RightAck, true},
		{bob, "", RightRead, true}, {bob, "", RightSend, false}, {nobody, "", RightRead, false},
		{root, "cert", RightSend, true}, {root, "gone", RightRead, true}, {alice, "gone", RightRead, false},
	} {
		msg, ok := m.check(tc.who, tc.box, tc.r)
		if ok != tc.want {
			t.Errorf("%v %s %q = %v (%s), want %v", tc.who, tc.r, tc.box, ok, msg, tc.want)
		}
		if !ok && !strings.Contains(msg, `mailbox "`+queue.MailboxName(tc.box)+`"`) {
			t.Errorf("refusal %q does not name the mailbox", msg)
		}
		if !ok && tc.box == "cert" && !strings.Contains(msg, string(tc.r)+" right") {
			t.Errorf("refusal %q does not name the %s right", msg, tc.r)
		}
	}
	if got := m.allowed(bob, RightAck); len(got) != 1 || got[0] != "cert" {
		t.Errorf("bob may acknowledge %q, want [cert]", got)
	}
	if got := m.allowed(root, RightAck); got != nil {
		t.Errorf("root's mailboxes %q, want nil (all)", got)
	}
}
