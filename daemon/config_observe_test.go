package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestObserveConfigKeys: metrics_listen and cert_expiry_warning, their
// defaults and the errors for bad values.
func TestObserveConfigKeys(t *testing.T) {
	for _, c := range []struct {
		extra   string
		wantErr string
		check   func(*Config) bool
	}{
		{"", "", func(c *Config) bool { return c.MetricsListen == "" && c.CertExpiryWarning.Duration == 30*24*time.Hour }},
		{`metrics_listen = "127.0.0.1:9464"`, "", func(c *Config) bool { return c.MetricsListen == "127.0.0.1:9464" }},
		{`metrics_listen = "[::1]:0"`, "", func(c *Config) bool { return c.MetricsListen == "[::1]:0" }},
		{`cert_expiry_warning = "0s"`, "", func(c *Config) bool { return c.CertExpiryWarning.Duration == 0 }},
		{`cert_expiry_warning = "2160h"`, "", func(c *Config) bool { return c.CertExpiryWarning.Duration == 90*24*time.Hour }},
		{`metrics_listen = "9464"`, `metrics_listen: "9464" is not host:port`, nil},
		{`metrics_listen = "127.0.0.1:"`, `metrics_listen: "127.0.0.1:" has no port`, nil},
		{`metrics_listen = "127.0.0.1:99999"`, `metrics_listen: "127.0.0.1:99999": bad port`, nil},
		{`cert_expiry_warning = "-1h"`, `cert_expiry_warning: -1h0m0s is negative`, nil},
		{`cert_expiry_warning = "30 days"`, `invalid duration "30 days"`, nil},
	} {
		dir := t.TempDir()
		f := filepath.Join(dir, "n.toml")
		// Top-level keys go before the first table.
		if err := os.WriteFile(f, []byte(c.extra+"\n"+goodConfig), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(f)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%q: %v", c.extra, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q: error %v, want %q", c.extra, err, c.wantErr)
		case c.wantErr == "" && !c.check(cfg):
			t.Errorf("%q: loaded %q, %v", c.extra, cfg.MetricsListen, cfg.CertExpiryWarning)
		}
	}
}
