package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
)

// Main is hotlined: it runs one node from a config file, or the dev lab.
// It returns when ctx is cancelled (SIGINT/SIGTERM) or the node fails.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		configFile string
		dev        bool
		devDir     string
	)
	cmd := &cobra.Command{
		Use:   "hotlined --config FILE | --dev [--dir DIR]",
		Short: "hotline node daemon: a store-and-forward link that never loses or duplicates a message",
		Long: `hotlined runs one hotline node from a TOML config file.

With --dev it runs a complete lab in one process on loopback: sites alpha
and bravo with three nodes each, a development PKI, sockets at DIR/<node>.sock
and data under DIR, kept across restarts.`,
		Version:       Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr := os.Getenv("HOTLINE_PPROF"); addr != "" {
				stop, err := startPprof(addr, stderr)
				if err != nil {
					return err
				}
				defer stop()
			}
			switch {
			case dev && configFile != "":
				return usageError{errors.New("use either --config or --dev, not both")}
			case dev:
				return RunDev(ctx, devDir, stdout, stderr)
			case configFile == "":
				return usageError{errors.New("no config: run with --config FILE, or --dev for a local lab")}
			case cmd.Flags().Changed("dir"):
				return usageError{errors.New("--dir goes with --dev")}
			}
			return runConfig(ctx, configFile, stderr)
		},
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.Flags().StringVar(&configFile, "config", "", "node config file (TOML)")
	cmd.Flags().BoolVar(&dev, "dev", false, "run a two-site, six-node lab on loopback in this process")
	cmd.Flags().StringVar(&devDir, "dir", "hotline-dev", "with --dev: directory for the lab's PKI, data and sockets")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	return cmd.Execute()
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// IsUsageError reports whether err came from bad command-line usage.
func IsUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

func runConfig(ctx context.Context, file string, stderr io.Writer) error {
	// SIGHUP is taken from the start, so that one sent while the node
	// starts does not end the process (its default action); it is
	// served once the node runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := LoadConfig(file)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	l, _ := parseLevel(cfg.LogLevel)
	level.Set(l)
	log := newLevelLogger(stderr, level, cfg.LogFormat)
	n, err := Open(cfg, log)
	if err != nil {
		return err
	}
	rl := newReloader(n, file, level)
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	stopWatchdog := watchdog(n)
	defer stopWatchdog()
	for {
		select {
		case <-ctx.Done():
			log.Info("signal received, stopping")
		case <-n.Done():
		case <-hup:
			n.reload(rl)
			continue
		}
		break
	}
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
	return n.Close()
}

// startPprof serves Go's net/http/pprof (a debugging aid) on addr, which
// must be a loopback address (127.0.0.0/8, ::1 or localhost).
func startPprof(addr string, stderr io.Writer) (stop func(), err error) {
	if err := checkLoopback(addr); err != nil {
		return nil, fmt.Errorf("HOTLINE_PPROF=%q: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HOTLINE_PPROF=%q: %w", addr, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("HOTLINE_PPROF=%q: resolved to %v, not a loopback address", addr, ln.Addr())
	}
	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "HOTLINE_PPROF: %v\n", err)
		}
	}()
	fmt.Fprintf(stderr, "pprof listening on http://%s/debug/pprof/\n", ln.Addr())
	return func() { srv.Close() }, nil
}

// checkLoopback accepts host:port with a loopback host.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("not host:port: %w", err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() || ip.Zone() != "" {
		return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1 or localhost): the profiler must not be reachable from the network", host)
	}
	return nil
}

// watchdog pings systemd's watchdog at half its interval while the node is
// healthy (see Node.health): not once its store has failed or its Raft has
// stopped, so that systemd restarts it. A node standing by for disk space
// is healthy.
func watchdog(n *Node) func() {
	interval, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(n.ctx)
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := n.health(); err != nil {
					n.log.Error("unhealthy: not pinging the systemd watchdog", "err", err)
					continue
				}
				_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

// RunDev runs the six-node lab in this process until ctx ends.
func RunDev(ctx context.Context, dir string, stdout, stderr io.Writer) error {
	if err := EnsureLabPKI(dir); err != nil {
		return fmt.Errorf("dev PKI in %s: %w", dir, err)
	}
	cfgs := LabConfigs(dir, []string{"fiber", "sat"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", s+1, i+1)
		return ip + ":17000", map[string]string{
			"fiber": ip + ":17100",
			"sat":   fmt.Sprintf("127.1.%d.%d:17100", s+1, i+1),
		}
	})
	for _, c := range cfgs {
		c.AllowRemoteDrills = true
	}
	log := newLogger(stderr, "info", "text")
	var nodes []*Node
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			return err
		}
		n, err := Open(c, log)
		if err != nil {
			return fmt.Errorf("start %s: %w", c.Node, err)
		}
		nodes = append(nodes, n)
	}
	fmt.Fprintf(stdout, `hotline dev lab is running: sites alpha (alpha-1..3) and bravo (bravo-1..3).
Data, PKI and sockets are in %[1]s; a restart with the same --dir keeps the messages.

  export HOTLINE_SOCKET=%[1]s/alpha-1.sock
  echo hello | hotlinectl send --to bravo --wait delivered
  hotlinectl --socket %[1]s/bravo-2.sock recv --ack
  hotlinectl status

Stop with Ctrl-C.
`, dir)
	select {
	case <-ctx.Done():
	case <-nodes[0].Done():
	}
	fmt.Fprintln(stdout, "stopping the lab")
	return nil
}
