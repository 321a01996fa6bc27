package daemon

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/transport/pki"
)

// Certificates: expiry warnings and reload.
//
// The node's TLS material lives in a pki.Keyring, which every TLS config
// (Raft, the link, both directions) reads at each handshake. Reload
// replaces it; connections made afterwards present the new certificate and
// trust the new CA, connections already open keep theirs until they are
// replaced.

// certInfo is one certificate the node depends on, for expiry checks.
type certInfo struct {
	which    string // "node" or "ca"
	subject  string
	notAfter time.Time
}

// certs lists keys' node certificate and the CA certificate that expires
// first.
func certs(keys *pki.Keyring) []certInfo {
	if keys == nil {
		return nil
	}
	b := keys.Current()
	out := []certInfo{{which: "node", subject: b.Identity.String(), notAfter: b.Leaf.NotAfter}}
	if ca := firstExpiring(b.CAs); ca != nil {
		out = append(out, certInfo{which: "ca", subject: ca.Subject.CommonName, notAfter: ca.NotAfter})
	}
	return out
}

func firstExpiring(cs []*x509.Certificate) *x509.Certificate {
	var first *x509.Certificate
	for _, c := range cs {
		if first == nil || c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	return first
}

// certAlarms words an alarm for each certificate of keys that expires
// within warn (cert_expiry_warning), or has expired.
func certAlarms(keys *pki.Keyring, warn time.Duration) []string {
	if warn <= 0 {
		return nil
	}
	now := time.Now()
	var out []string
	for _, c := range certs(keys) {
		left := c.notAfter.Sub(now)
		name := "node certificate (" + c.subject + ")"
		if c.which == "ca" {
			name = "CA certificate (" + c.subject + ")"
		}
		switch {
		case left <= 0:
			out = append(out, fmt.Sprintf("certificate expired: %s expired at %s; issue a new one, install it and reload (SIGHUP)", name, c.notAfter.UTC().Format(time.RFC3339)))
		case left <= warn:
			out = append(out, fmt.Sprintf("certificate expiring: %s expires at %s (in %s, cert_expiry_warning %s); issue a new one, install it and reload (SIGHUP)",
				name, c.notAfter.UTC().Format(time.RFC3339), fmtDays(left), fmtDays(warn)))
		}
	}
	return out
}

// fmtDays writes a duration in days and hours ("12d3h"), or as Go does
// below a day.
func fmtDays(d time.Duration) string {
	if d < 24*time.Hour {
		return d.Round(time.Second).String()
	}
	days := d / (24 * time.Hour)
	h := (d - days*24*time.Hour) / time.Hour
	return fmt.Sprintf("%dd%dh", days, h)
}

// certCollector reports the certificates' expiry times and warnings.
type certCollector struct {
	keys *pki.Keyring
	warn time.Duration // cert_expiry_warning
}

var (
	certExpiryDesc = prometheus.NewDesc("hotline_cert_expiry_timestamp_seconds",
		"When the certificate expires (Unix time): cert=node is this node's, cert=ca the CA's (the first to expire, if the file holds several).", []string{"cert"}, nil)
	certWarnDesc = prometheus.NewDesc("hotline_cert_expiry_warning",
		"1 while the certificate expires within cert_expiry_warning (or has expired): an alarm.", []string{"cert"}, nil)
)

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certExpiryDesc
	ch <- certWarnDesc
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	warn := c.warn
	now := time.Now()
	for _, ci := range certs(c.keys) {
		w := 0.0
		if warn > 0 && ci.notAfter.Sub(now) <= warn {
			w = 1
		}
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(ci.notAfter.Unix()), ci.which)
		ch <- prometheus.MustNewConstMetric(certWarnDesc, prometheus.GaugeValue, w, ci.which)
	}
}

// reloader re-reads a node's config file (on SIGHUP): the TLS certificate,
// key and CA it names, and log_level, take effect; other changes wait for
// a restart (and are reported as such).
type reloader struct {
	keys  *pki.Keyring // the node's, replaced by apply
	log   *slog.Logger
	file  string
	level *slog.LevelVar // the node's log level; nil: not reloadable
	cfg   *Config        // as last loaded
}

// newReloader returns the reloader of file for the node running cfg with
// keys; level is the log level the node's logger (log) uses.
func newReloader(cfg *Config, keys *pki.Keyring, log *slog.Logger, file string, level *slog.LevelVar) *reloader {
	running := *cfg // a copy: reload updates it, the node's cfg stays as it started
	return &reloader{keys: keys, log: log, file: file, level: level, cfg: &running}
}

// reload re-reads the config file and applies what can change while the
// node runs. It returns a summary of what changed ("reloaded: node
// certificate (expires ...), log_level info→debug"), and an error for
// what it refused (a config that does not load, certificate files that do
// not load or verify, a certificate for another identity): what was
// refused keeps its old value.
func (r *reloader) reload() (string, error) {
	cfg, err := LoadConfig(r.file)
	if err != nil {
		return "", fmt.Errorf("reload refused, nothing changed: %w", err)
	}
	return r.apply(cfg)
}

// run reloads (on SIGHUP) and logs the outcome.
func (r *reloader) run() {
	summary, err := r.reload()
	if summary != "" {
		r.log.Info(summary)
	}
	if err != nil {
		r.log.Error("reload: "+err.Error(), "config", r.file)
	}
}

// apply puts cfg's certificates and log level in use.
func (r *reloader) apply(cfg *Config) (string, error) {
	var changed, errs []string
	if r.level != nil && cfg.LogLevel != r.cfg.LogLevel {
		l, _ := parseLevel(cfg.LogLevel) // Validate checked it
		r.level.Set(l)
		changed = append(changed, fmt.Sprintf("log_level %s→%s", r.cfg.LogLevel, cfg.LogLevel))
		r.cfg.LogLevel = cfg.LogLevel
	}
	old := r.keys.Current()
	b, err := pki.Load(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
	if err == nil {
		err = r.keys.Replace(b, time.Now())
	}
	if err != nil {
		errs = append(errs, fmt.Sprintf("certificates refused, the old ones stay in use: %v", err))
	} else {
		if !bytes.Equal(b.Leaf.Raw, old.Leaf.Raw) {
			changed = append(changed, fmt.Sprintf("node certificate (expires %s)", b.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
		if !sameCerts(b.CAs, old.CAs) {
			ca := firstExpiring(b.CAs)
			changed = append(changed, fmt.Sprintf("CA certificate (expires %s)", ca.NotAfter.UTC().Format(time.RFC3339)))
		}
		r.cfg.TLS = cfg.TLS
	}
	if other := restartOnly(r.cfg, cfg); len(other) > 0 {
		changed = append(changed, "changed but not applied until a restart: "+strings.Join(other, ", "))
	}
	summary := "reloaded: nothing changed"
	if len(changed) > 0 {
		summary = "reloaded: " + strings.Join(changed, ", ")
	}
	if len(errs) > 0 {
		return summary, errors.New(strings.Join(errs, "; "))
	}
	return summary, nil
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// restartOnly names the top-level keys that differ between the running
// config and a newly loaded one, other than those reload applies.
func restartOnly(running, loaded *Config) []string {
	var out []string
	rv, lv := reflect.ValueOf(running).Elem(), reflect.ValueOf(loaded).Elem()
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if key == "" || key == "tls" || key == "log_level" {
			continue
		}
		if !reflect.DeepEqual(rv.Field(i).Interface(), lv.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}
