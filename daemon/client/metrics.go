package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// PathMetrics is the socket's Prometheus endpoint (GET), the same
// registry the optional metrics listener serves.
const PathMetrics = "/metrics"

// maxMetrics bounds a metrics reply (a lab node's is about 48 KB).
const maxMetrics = 16 << 20

// Metrics returns the node's metrics in the Prometheus text exposition
// format, as the daemon wrote them. A reply over 16 MiB is an error.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+PathMetrics, nil)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", PathMetrics, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, http.MethodGet, PathMetrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetrics+1))
	if err != nil {
		return nil, c.transportError(ctx, http.MethodGet, PathMetrics, err)
	}
	if len(b) > maxMetrics {
		return nil, fmt.Errorf("client: GET %s: hotlined at %s: reply over %d bytes", PathMetrics, c.socket, maxMetrics)
	}
	return b, nil
}
