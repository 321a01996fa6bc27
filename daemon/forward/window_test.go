package forward

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/window/*.txt with the outputs the window gives")

// TestWindowTranscripts replays the transcripts in testdata/window: each
// is a series of events fed to one Window and what it answered. A line is
// a command; the lines after it starting with "=> " are its expected
// output; "#" starts a comment. Commands:
//
//	init size=N acked=N min=D max=D   a new Window (defaults 2, 0, 100ms, 1s)
//	new LAST                          OnNew(LAST)
//	held on|off                       SetHeld
//	next                              prints Next()
//	send LAST                         Next() must be Send; Sent(LAST); prints the batch
//	empty                             Next() must be Send; the store had nothing: OnNew(After)
//	ack BATCH LAST                    OnAck(batch ending at BATCH, ack LAST); prints the Step
//	fail BATCH                        OnFailure(batch ending at BATCH); prints the Step
//	fail                              Fail(); prints the Step
//	retry                             Retry()
//	state                             prints the Window
//
// go test ./daemon/forward/ -run Transcripts -update rewrites the expected
// outputs; read the diff before committing it.
func TestWindowTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "window", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in testdata/window (%v)", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := runTranscript(t, string(data))
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != string(data) {
				t.Errorf("%s differs from what the window does (go test -run Transcripts -update, then read the diff):\n%s", file, diff(string(data), got))
			}
		})
	}
}

// runTranscript runs the commands of a transcript and returns it with the
// expected outputs replaced by the actual ones.
func runTranscript(t *testing.T, text string) string {
	var out strings.Builder
	w := NewWindow(2, 0, 100*time.Millisecond, time.Second)
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "=> ") || line == "=>" {
			continue
		}
		out.WriteString(line + "\n")
		cmd := strings.Fields(line)
		if len(cmd) == 0 || strings.HasPrefix(cmd[0], "#") {
			continue
		}
		res, err := runCommand(&w, cmd)
		if err != nil {
			t.Fatalf("line %d: %q: %v", n+1, line, err)
		}
		for _, r := range res {
			out.WriteString("=> " + r + "\n")
		}
	}
	return out.String()
}

func runCommand(w **Window, cmd []string) ([]string, error) {
	nums := func(want int) ([]uint64, error) {
		if len(cmd)-1 != want {
			return nil, fmt.Errorf("want %d numbers", want)
		}
		var out []uint64
		for _, a := range cmd[1:] {
			v, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	switch cmd[0] {
	case "init":
		size, acked, lo, hi := 2, uint64(0), 100*time.Millisecond, time.Second
		for _, kv := range cmd[1:] {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "size":
				size, err = strconv.Atoi(v)
			case "acked":
				acked, err = strconv.ParseUint(v, 10, 64)
			case "min":
				lo, err = time.ParseDuration(v)
			case "max":
				hi, err = time.ParseDuration(v)
			default:
				err = fmt.Errorf("unknown setting %q", k)
			}
			if err != nil {
				return nil, err
			}
		}
		*w = NewWindow(size, acked, lo, hi)
		return nil, nil
	case "new":
		v, err := nums(1)
		if err != nil {
			return nil, err
		}
		(*w).OnNew(v[0])
		return nil, nil
	case "held":
		if len(cmd) != 2 || (cmd[1] != "on" && cmd[1] != "off") {
			return nil, fmt.Errorf("want held on|off")
		}
		(*w).SetHeld(cmd[1] == "on")
		return nil, nil
	case "next":
		return []string{(*w).Next().String()}, nil
	case "send", "empty":
		op := (*w).Next()
		if op.Action != Send {
			return []string{"cannot send: next is " + op.String()}, nil
		}
		if cmd[0] == "empty" {
			(*w).OnNew(op.After)
			return []string{fmt.Sprintf("nothing after %d", op.After)}, nil
		}
		v, err := nums(1)
		if err != nil {
			return nil, err
		}
		f := (*w).Sent(v[0])
		return []string{fmt.Sprintf("sent %d..%d", op.After+1, f.Last)}, nil
	case "ack":
		v, err := nums(2)
		if err != nil {
			return nil, err
		}
		return []string{(*w).OnAck(Flight{Last: v[0]}, v[1]).String()}, nil
	case "fail":
		if len(cmd) == 1 {
			return []string{(*w).Fail().String()}, nil
		}
		v, err := nums(1)
		if err != nil {
			return nil, err
		}
		return []string{(*w).OnFailure(Flight{Last: v[0]}).String()}, nil
	case "retry":
		(*w).Retry()
		return nil, nil
	case "state":
		return []string{(*w).String()}, nil
	}
	return nil, fmt.Errorf("unknown command %q", cmd[0])
}

// diff shows the first differing lines of want and got.
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, a, b)
		}
	}
	return "(no difference)"
}
