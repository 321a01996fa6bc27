package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// metricsServer is the optional read-only TCP listener (metrics_listen)
// for Prometheus and health probes. It serves GET and HEAD of /metrics,
// /healthz and /readyz and nothing else (404; 405 for other methods): no
// payload, no submit, no admin call is reachable through it, so it can be
// opened to a monitoring network without granting what the socket grants.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

// Limits of the metrics listener.
const (
	metricsMaxConns      = 16 // a scraper or two and some probes
	metricsHeaderTimeout = 5 * time.Second
	metricsWriteTimeout  = 30 * time.Second
	metricsIdleTimeout   = 60 * time.Second
	metricsMaxHeader     = 8 << 10
)

// startMetricsServer listens on metrics_listen; nil when it is not set.
func startMetricsServer(n *Node) (*metricsServer, error) {
	if n.cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	routes := map[string]http.Handler{
		"/metrics": n.metrics.handler(),
		"/healthz": healthHandler(n.health.healthz),
		"/readyz":  healthHandler(n.health.readyz),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := routes[r.URL.Path]
		switch {
		case !ok:
			http.Error(w, "not found: this listener serves only /metrics, /healthz and /readyz", http.StatusNotFound)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: GET or HEAD only", http.StatusMethodNotAllowed)
		default:
			route.ServeHTTP(w, r)
		}
	})
	m := &metricsServer{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: metricsHeaderTimeout,
		ReadTimeout:       metricsHeaderTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeader,
	}}
	go func() {
		if err := m.srv.Serve(newLimitListener(ln, metricsMaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics listener stopped", "err", err)
		}
	}()
	n.log.Info("metrics listener", "addr", ln.Addr().String())
	return m, nil
}

// Addr is the listener's address (with the port chosen, for port 0).
func (m *metricsServer) Addr() net.Addr { return m.ln.Addr() }

func (m *metricsServer) close() error {
	err := m.srv.Close()
	m.ln.Close() // in case Serve had not started yet
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
