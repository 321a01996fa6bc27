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
	"runtime/debug"
	"strings"
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
		devOpts    = DefaultDevOptions()
	)
	cmd := &cobra.Command{
		Use:   "hotlined --config FILE | --dev [--dir DIR] [--sites N] [--base-port N]",
		Short: "hotline node daemon: a store-and-forward link that never loses or duplicates a message",
		Long: `hotlined runs one hotline node from a TOML config file.

With --dev it runs a complete lab in one process on loopback: sites alpha
and bravo (with --sites 3, charlie too) with three nodes each, a development
PKI, sockets at DIR/<node>.sock and data under DIR, kept across restarts.
Node i of site s listens on 127.0.s.i:P (Raft), 127.0.s.i:P+100 (path
fiber) and 127.1.s.i:P+100 (path sat), P being --base-port (17000);
two labs on one machine need their own --dir and base ports at least 101
apart.`,
		Version:       Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          unknownCommand,
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
				return RunDev(ctx, devOpts, stdout, stderr)
			case configFile == "":
				return usageError{errors.New("no config: run with --config FILE, or --dev for a local lab")}
			case cmd.Flags().Changed("dir"), cmd.Flags().Changed("sites"), cmd.Flags().Changed("base-port"):
				return usageError{errors.New("--dir, --sites and --base-port go with --dev")}
			}
			return runConfig(ctx, configFile, stderr)
		},
	}
	cmd.AddCommand(restoreCommand(stdout)) // backup.go
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.Flags().StringVar(&configFile, "config", "", "node config `FILE` (TOML)")
	cmd.Flags().BoolVar(&dev, "dev", false, "run a lab on loopback in this process: two sites (see --sites) of three nodes")
	cmd.Flags().StringVar(&devOpts.Dir, "dir", devOpts.Dir, "with --dev: `DIR` for the lab's PKI, data and sockets")
	cmd.Flags().IntVar(&devOpts.Sites, "sites", devOpts.Sites, "with --dev: `N` sites (alpha, bravo, charlie, ...), 2 to 9")
	cmd.Flags().IntVar(&devOpts.BasePort, "base-port", devOpts.BasePort, "with --dev: Raft port `N` of every node; the paths listen on N+100")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.SetVersionTemplate(BuildInfo().Template("hotlined"))
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.AddCommand(newCheckConfigCmd(stdout, stderr), newManCmd())
	return cmd.Execute()
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// IsUsageError reports whether err came from bad command-line usage.
func IsUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// setMemoryLimit sets the Go runtime's soft memory limit of a node's
// process to memoryLimit(cfg), unless GOMEMLIMIT sets it.
func setMemoryLimit(cfg *Config, log *slog.Logger) {
	limit := memoryLimit(cfg)
	if limit == 0 {
		log.Info("memory: Go soft limit from GOMEMLIMIT", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory: Go soft limit set (GOMEMLIMIT overrides)", "bytes", limit)
}

// memoryLimit is a node's soft memory limit, 0 when GOMEMLIMIT is set:
// 128 MiB and four of the largest payloads cfg accepts (132 MiB by
// default). The collector then runs when the heap nears it rather than
// only when the heap has doubled since the last collection: with a
// million messages queued a node's live heap reached about 90 MB, and
// without the limit its anonymous memory twice that. It is soft: a heap
// that needs more gets it, at the cost of more frequent collection (the
// runtime caps that at half the CPU).
func memoryLimit(cfg *Config) int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	return 128<<20 + 4*cfg.MaxMessageSize
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
	setMemoryLimit(cfg, log)
	n, err := Open(cfg, log)
	if err != nil {
		return err
	}
	rl := newReloader(n.cfg, n.keys, n.log, file, level)
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	stopWatchdog := watchdog(n)
	defer stopWatchdog()
	for {
		select {
		case <-ctx.Done():
			log.Info("signal received, stopping")
		case <-n.Done():
		case <-hup:
			rl.run()
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
// healthy (see health.healthy): not once its store has failed or its Raft has
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
				if err := n.health.healthy(); err != nil {
					n.log.Error("unhealthy: not pinging the systemd watchdog", "err", err)
					continue
				}
				_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

// RunDev runs the dev lab (opts.Sites sites of three nodes) in this
// process until ctx ends.
func RunDev(ctx context.Context, opts DevOptions, stdout, stderr io.Writer) error {
	if err := opts.validate(); err != nil {
		return err
	}
	dir := opts.Dir
	sites, _ := LabSiteNames(opts.Sites)
	if err := EnsureLabPKIFor(dir, sites); err != nil {
		return fmt.Errorf("dev PKI in %s: %w", dir, err)
	}
	cfgs := LabConfigsFor(dir, sites, []string{"fiber", "sat"}, opts.addrs)
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
	// The banner's commands work once every site has a leader.
	if err := waitLeaders(ctx, cfgs, nodes); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("dev lab: %w", err)
	}
	var names []string
	for _, s := range sites {
		names = append(names, fmt.Sprintf("%s (%s-1..3)", s, s))
	}
	fmt.Fprintf(stdout, `hotline dev lab is running: sites %[1]s.
Data, PKI and sockets are in %[2]s; a restart with the same --dir keeps the messages.

From the repository root, after go build -o bin/ ./cmd/... :

  export HOTLINE_SOCKET=%[2]s/alpha-1.sock
  echo hello | %[3]s send --to bravo --wait delivered
  %[3]s --socket %[2]s/bravo-2.sock recv --ack
  %[3]s status

Stop with Ctrl-C.
`, strings.Join(names, ", "), dir, opts.Ctl)
	select {
	case <-ctx.Done():
	case <-nodes[0].Done():
	}
	fmt.Fprintln(stdout, "stopping the lab")
	return nil
}
