package consensus

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestHclogAdapter(t *testing.T) {
	logs := &logBuffer{}
	l := newHclog(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})), "raft")

	l.Info("entering follower state", "follower", "n1")                                               // chatter: Debug, dropped
	l.Info("updating configuration", "command", "AddVoter", "servers", hclog.Fmt("%+v", []int{1, 2})) // kept at Info
	l.Debug("some detail")                                                                            // dropped
	l.Named("net").Warn("accept failed", "error", "boom")                                             // Warn, named
	l.With("peer", "n2").Error("failed to heartbeat to", "x", 1)                                      // implied args
	for range 10 {
		l.Error("failed to appendEntries to", "peer", "n3", "error", "refused")
	}
	l.Error("failed to appendEntries to", "peer", "n2", "error", "refused")                 // other peer
	l.Error("failed to pipeline appendEntries", "peer", "n4", "error", errPipelineRejected) // Raft's normal course: Debug
	l.Error("failed to pipeline appendEntries", "peer", "n5", "error", errors.New("connection reset"))

	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="updating configuration" logger=raft command=AddVoter servers="[1 2]"`,
		`level=WARN msg="accept failed" logger=raft.net error=boom`,
		`level=ERROR msg="failed to heartbeat to" peer=n2 logger=raft x=1`,
		`level=ERROR msg="failed to appendEntries to" logger=raft peer=n2`,
		`level=ERROR msg="failed to pipeline appendEntries" logger=raft peer=n5 error="connection reset"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"entering follower state", "some detail", "peer=n4"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("%q logged at Info:\n%s", unwanted, out)
		}
	}
	if n := strings.Count(out, "peer=n3"); n != 1 {
		t.Errorf("repeated error about n3 logged %d times, want 1:\n%s", n, out)
	}
	if l.IsDebug() || !l.IsInfo() || !l.IsError() {
		t.Error("level checks do not follow the slog handler")
	}
	l.SetLevel(hclog.Error)
	l.Warn("after SetLevel")
	if strings.Contains(logs.String(), "after SetLevel") || l.GetLevel() != hclog.Error {
		t.Error("SetLevel(Error) did not filter Warn")
	}
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("from std logger")
	if !strings.Contains(logs.String(), `level=ERROR msg="from std logger"`) {
		t.Errorf("standard logger output missing:\n%s", logs.String())
	}
}
