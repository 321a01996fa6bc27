package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
)

// scrape fetches path from a metrics listener and returns the status and
// body.
func httpGet(t testing.TB, method, url string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// parseExposition parses Prometheus text exposition strictly: a malformed
// line, a bad name or a repeated family fails.
func parseExposition(t testing.TB, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("malformed exposition: %v", err)
	}
	return fams
}

// metricsURL is the base URL of node's metrics listener.
func metricsURL(l *clustertest.Lab, node string) string {
	return "http://" + daemon.MetricsAddr(l.Node(node))
}

// value returns the value of the family's sample whose labels include
// want, and whether there is one.
func value(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, lp := range m.Label {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func withMetricsListener(c *daemon.Config) { c.MetricsListen = "127.0.0.1:0" }

// TestMetricsListener scrapes the read-only listener of an origin and a
// destination node after a message went through, parses the exposition,
// checks that every metric of the README's list is there with its labels
// pre-initialised, that the latency histograms counted the message, that
// promtool (when installed) finds nothing to complain about, and that the
// listener serves nothing else.
func TestMetricsListener(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, withMetricsListener)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := lab.Client("alpha-1").Submit(ctx, client.SubmitRequest{To: "bravo", Precedence: "flash", Wait: "delivered", Payload: []byte("metrics")})
	if err != nil || m.WaitTimedOut {
		t.Fatalf("submit: %v %+v", err, m)
	}

	code, body := httpGet(t, "GET", metricsURL(lab, "alpha-1")+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	fams := parseExposition(t, body)
	for _, name := range []string{
		"hotline_build_info", "hotline_submitted_total", "hotline_delivered_total", "hotline_received_total",
		"hotline_send_failures_total", "hotline_link_test_failures_total", "hotline_link_handshake_rejections_total",
		"hotline_raft_handshake_rejections_total", "hotline_store_corruption_total", "hotline_storage_full",
		"hotline_queue_depth", "hotline_queue_oldest_age_seconds", "hotline_submit_duration_seconds",
		"hotline_end_to_end_seconds", "hotline_state_commit_seconds", "hotline_raft_log_write_seconds",
		"hotline_raft_term", "hotline_raft_commit_index", "hotline_raft_applied_index", "hotline_raft_last_index",
		"hotline_raft_last_contact_seconds", "hotline_raft_state", "hotline_is_leader",
		"hotline_path_up", "hotline_path_rtt_seconds", "hotline_path_loss_ratio", "hotline_path_sent_bytes_total",
		"hotline_path_received_bytes_total", "hotline_receipts_pending", "hotline_inbox_unread", "hotline_outbound_queued",
		"hotline_alarms", "hotline_cert_expiry_timestamp_seconds", "hotline_cert_expiry_warning",
		// from Raft's go-metrics, through the Prometheus sink
		"hotline_raft_apply_total", "hotline_raft_commit_time_seconds", "hotline_raft_fsm_apply_batch_seconds",
		"hotline_raft_transition_leader_lease_timeout_total", "hotline_raft_rpc_append_entries_store_logs_seconds",
	} {
		if fams[name] == nil {
			t.Errorf("%s missing from the scrape", name)
		}
	}
	// Failure counters and per-channel gauges exist before any failure.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"hotline_send_failures_total", map[string]string{"dest": "bravo"}},
		{"hotline_link_test_failures_total", map[string]string{"site": "bravo", "path": "sat"}},
		{"hotline_link_handshake_rejections_total", map[string]string{"reason": "unknown_ca"}},
		{"hotline_queue_depth", map[string]string{"dest": "bravo", "precedence": "routine"}},
		{"hotline_queue_oldest_age_seconds", map[string]string{"dest": "bravo", "precedence": "immediate"}},
		{"hotline_alarms", map[string]string{"kind": "cert_expiry"}},
		{"hotline_cert_expiry_timestamp_seconds", map[string]string{"cert": "ca"}},
		{"hotline_end_to_end_seconds", map[string]string{"origin": "bravo", "precedence": "priority"}},
	} {
		if _, ok := value(fams[c.name], c.labels); !ok {
			t.Errorf("%s%v is not pre-initialised", c.name, c.labels)
		}
	}
	if v, _ := value(fams["hotline_submit_duration_seconds"], map[string]string{"dest": "bravo"}); v != 1 {
		t.Errorf("hotline_submit_duration_seconds{dest=bravo} counted %v submits, want 1", v)
	}
	// Exactly one state is 1 (which one may change between the scrape and
	// a look at the node).
	ones := 0
	for _, st := range daemon.RaftStates {
		v, ok := value(fams["hotline_raft_state"], map[string]string{"state": st})
		if !ok {
			t.Errorf("hotline_raft_state{state=%q} missing", st)
		}
		if v == 1 {
			ones++
		}
	}
	if ones != 1 {
		t.Errorf("hotline_raft_state is 1 for %d states, want 1", ones)
	}
	bi := fams["hotline_build_info"]
	if v, ok := value(bi, map[string]string{"go_version": runtime.Version()}); !ok || v != 1 {
		t.Errorf("hotline_build_info: %v", bi)
	}
	if exp, _ := value(fams["hotline_cert_expiry_timestamp_seconds"], map[string]string{"cert": "node"}); exp < float64(time.Now().Add(300*24*time.Hour).Unix()) {
		t.Errorf("node certificate expiry %v, want about two years ahead", exp)
	}

	// The message is counted once end to end, by the bravo node that
	// accepted its batch.
	var e2e float64
	for _, node := range daemon.LabNodes("bravo") {
		_, b := httpGet(t, "GET", metricsURL(lab, node)+"/metrics")
		v, _ := value(parseExposition(t, b)["hotline_end_to_end_seconds"], map[string]string{"origin": "alpha", "precedence": "flash"})
		e2e += v
	}
	if e2e != 1 {
		t.Errorf("hotline_end_to_end_seconds counted %v messages over bravo's nodes, want 1", e2e)
	}

	if path, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not on PATH: skipped promtool check metrics (the exposition was parsed with expfmt)")
	}

	// Nothing else is served, and only GET and HEAD.
	base := metricsURL(lab, "alpha-1")
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200},
		{"HEAD", "/metrics", 200},
		{"GET", "/v1/status", 404},
		{"GET", "/v1/inbox", 404},
		{"POST", "/v1/messages?to=bravo", 404},
		{"GET", "/metrics/", 404},
		{"GET", "/", 404},
		{"GET", "/debug/pprof/", 404},
		{"POST", "/metrics", 405},
		{"DELETE", "/healthz", 405},
	} {
		if code, b := httpGet(t, c.method, base+c.path); code != c.want {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, code, c.want, b)
		}
	}
}

// TestMetricsListenerLimits checks that a connection that never sends its
// headers is closed, and that connections over the cap wait.
func TestMetricsListenerLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, withMetricsListener)
	addr := daemon.MetricsAddr(lab.Node("bravo-2"))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range daemon.MetricsMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /metrics HTTP/1.1\r\n")) // headers never end
		conns = append(conns, c)
	}
	// Over the cap: accepted by the kernel, served only once a slot frees.
	extra := &http.Client{Timeout: 2 * time.Second}
	if _, err := extra.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatalf("a request over the connection cap (%d) was served at once", daemon.MetricsMaxConns)
	}
	// The stalled connections are closed after the header timeout, and
	// then requests are served again.
	start := time.Now()
	buf := make([]byte, 1)
	conns[0].SetReadDeadline(time.Now().Add(3 * daemon.MetricsHeaderTimeout))
	if _, err := conns[0].Read(buf); err == nil {
		t.Fatal("a stalled connection got data instead of being closed")
	}
	if d := time.Since(start); d > 2*daemon.MetricsHeaderTimeout {
		t.Fatalf("stalled connection closed after %v, want about %v", d, daemon.MetricsHeaderTimeout)
	}
	clustertest.Eventually(t, 10*time.Second, "the listener serves again", func() bool {
		resp, err := extra.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestHealthAndReadiness follows /healthz and /readyz (on the socket and
// on the metrics listener), status's exit code and the daemon.Watchdog's verdict
// through a cut of all paths, an operator's path down, the loss of the
// site's majority and a Raft shutdown.
func TestHealthAndReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, withMetricsListener)
	const node = "alpha-1"
	n := lab.Node(node)
	sc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", lab.Configs[node].Socket)
	}}}
	// probe asks the metrics listener and the socket; they must agree (a
	// few tries, in case the state changed between the two requests).
	probe := func(path string) (int, daemon.HealthReport) {
		t.Helper()
		for try := 0; ; try++ {
			code, b := httpGet(t, "GET", metricsURL(lab, node)+path)
			var h daemon.HealthReport
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatalf("%s: %v: %s", path, err, b)
			}
			resp, err := sc.Get("http://hotline" + path)
			if err != nil {
				t.Fatalf("socket %s: %v", path, err)
			}
			resp.Body.Close()
			if resp.StatusCode == code {
				return code, h
			}
			if try == 3 {
				t.Fatalf("%s: socket %d, metrics listener %d", path, resp.StatusCode, code)
			}
		}
	}
	failed := func(h daemon.HealthReport) []string {
		var out []string
		for _, c := range h.Checks {
			if !c.OK {
				out = append(out, c.Name)
			}
		}
		return out
	}
	statusExit := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return ctl.ExitCode(ctl.Run(ctx, []string{"--socket", lab.Configs[node].Socket, "status"}, nil, io.Discard, io.Discard))
	}

	clustertest.Eventually(t, 20*time.Second, "alpha-1 ready", func() bool { c, _ := probe("/readyz"); return c == 200 })
	if c, h := probe("/healthz"); c != 200 || h.Status != "ok" || h.Node != node || len(h.Checks) != 3 {
		t.Fatalf("healthz: %d %+v", c, h)
	}
	if got := statusExit(); got != 0 {
		t.Fatalf("status exit code %d with no alarms, want 0", got)
	}

	// An operator takes both paths down: alive, not ready, alarms raised.
	c := lab.Client(node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, p := range []string{"fiber", "sat"} {
		if _, err := c.PathDown(ctx, node, p, "close"); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.Eventually(t, 10*time.Second, "alpha-1 not ready without paths", func() bool {
		code, h := probe("/readyz")
		return code == 503 && slices.Equal(failed(h), []string{"links"})
	})
	if c, _ := probe("/healthz"); c != 200 {
		t.Errorf("healthz %d without paths, want 200 (alive)", c)
	}
	if err := daemon.Health(n); err != nil {
		t.Errorf("daemon.Watchdog verdict without paths: %v, want healthy", err)
	}
	if got := statusExit(); got != 5 {
		t.Errorf("status exit code %d with paths disabled, want 5 (alarms)", got)
	}
	_, body := httpGet(t, "GET", metricsURL(lab, node)+"/metrics")
	if v, _ := value(parseExposition(t, body)["hotline_alarms"], map[string]string{"kind": "path_admin_down"}); v != 6 {
		t.Errorf("hotline_alarms{kind=path_admin_down} = %v, want 6 (3 bravo nodes × 2 paths)", v)
	}
	for _, p := range []string{"fiber", "sat"} {
		if _, err := c.PathUp(ctx, node, p); err != nil {
			t.Fatal(err)
		}
	}
	clustertest.Eventually(t, 20*time.Second, "alpha-1 ready again", func() bool { c, _ := probe("/readyz"); return c == 200 })

	// The site loses its majority: no leader, not ready, still alive.
	lab.Node("alpha-2").Close()
	lab.Node("alpha-3").Close()
	clustertest.Eventually(t, 20*time.Second, "alpha-1 not ready without a leader", func() bool {
		code, h := probe("/readyz")
		return code == 503 && slices.Contains(failed(h), "leader")
	})
	if c, h := probe("/healthz"); c != 200 {
		t.Errorf("healthz %d without a majority, want 200: %+v", c, h)
	}

	// Raft shuts down: not alive, and the daemon.Watchdog is no longer pinged.
	daemon.RaftOf(n).Close()
	code, h := probe("/healthz")
	if code != 503 || !slices.Equal(failed(h), []string{"raft"}) {
		t.Errorf("healthz after raft shutdown: %d %+v", code, h)
	}
	if err := daemon.Health(n); err == nil || !strings.Contains(err.Error(), "raft: shut down") {
		t.Errorf("daemon.Watchdog verdict after raft shutdown: %v", err)
	}
}

// TestGrafanaDashboard checks that the dashboard is valid JSON and that
// every hotline metric its queries use is in a scrape.
func TestGrafanaDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	raw, err := os.ReadFile("../configs/grafana/hotline.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	lab := clustertest.Start(t, withMetricsListener)
	_, body := httpGet(t, "GET", metricsURL(lab, lab.Leader("alpha"))+"/metrics")
	fams := parseExposition(t, body)
	names := regexp.MustCompile(`\bhotline_[a-z0-9_]+`)
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range names.FindAllString(tg.Expr, -1) {
				used++
				base := name
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suf); ok && fams[b] != nil && (fams[b].GetType() == dto.MetricType_HISTOGRAM || fams[b].GetType() == dto.MetricType_SUMMARY) {
						base = b
					}
				}
				if fams[base] == nil {
					t.Errorf("panel %q uses %s, which no scrape has", p.Title, name)
				}
			}
		}
	}
	if used < 10 {
		t.Errorf("dashboard %q references only %d hotline metrics", dash.Title, used)
	}
}

// TestWatchdogFollowsHealth runs the systemd daemon.Watchdog loop against a
// notify socket of the test's own: it is pinged while /healthz passes and
// no longer once Raft has shut down.
func TestWatchdogFollowsHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	n := lab.Node("bravo-3")
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000") // pinged every 50ms
	stop := daemon.Watchdog(n)
	defer stop()

	pings := func(d time.Duration) int {
		count := 0
		buf := make([]byte, 256)
		end := time.Now().Add(d)
		for {
			conn.SetReadDeadline(end)
			k, err := conn.Read(buf)
			if err != nil {
				return count
			}
			if string(buf[:k]) == "WATCHDOG=1" {
				count++
			}
		}
	}
	if got := pings(time.Second); got < 5 {
		t.Fatalf("%d daemon.Watchdog pings in 1s from a healthy node, want about 20", got)
	}
	daemon.RaftOf(n).Close()
	if err := daemon.Health(n); err == nil {
		t.Fatal("healthy after raft shutdown")
	}
	pings(200 * time.Millisecond) // one may have been on its way
	if got := pings(time.Second); got != 0 {
		t.Fatalf("%d daemon.Watchdog pings in 1s after raft shutdown, want 0", got)
	}
}

// BenchmarkScrape measures one scrape of a node's metrics listener in the
// in-process lab (the process-wide Raft metrics of six nodes included).
func BenchmarkScrape(b *testing.B) {
	lab := clustertest.Start(b, withMetricsListener)
	url := metricsURL(lab, lab.Leader("alpha")) + "/metrics"
	var size int
	for b.Loop() {
		_, body := httpGet(b, "GET", url)
		size = len(body)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}
