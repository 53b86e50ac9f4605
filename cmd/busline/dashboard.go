package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/busline/busline/dashboard"
)

// dashboardShutdown bounds how long open page connections may delay the end.
const dashboardShutdown = 5 * time.Second

func (a *app) dashboardCommand() *cobra.Command {
	var (
		listen string
		opts   dashboard.Options
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web page of events, groups, consumers, dead letters and a live tail, and /metrics",
		Long: `dashboard serves a web page over the same inspection capabilities as inspect,
tail and dead: events with their retained length and rate; consumer groups with
lag, pending, consumers and idle time (stale consumers highlighted); the dead
letters of each group with replay and purge behind a confirmation; a live tail
of an event. /metrics serves the same figures for Prometheus.

It listens on 127.0.0.1:8089 by default. Any address that is not loopback needs
--token (or $BUSLINE_DASHBOARD_TOKEN): the page then asks for it once, and
/metrics wants "Authorization: Bearer TOKEN". --read-only refuses replay and
purge. AMQP cannot list its queues: name the groups to show with --group.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Token == "" {
				opts.Token = os.Getenv("BUSLINE_DASHBOARD_TOKEN")
			}
			if err := dashboard.CheckListen(listen, opts.Token); err != nil {
				return withCode(exitUsage, err)
			}
			if opts.Refresh <= 0 || opts.StaleAfter <= 0 {
				return usagef("--refresh and --stale want a positive duration such as 2s (got %s and %s)", opts.Refresh, opts.StaleAfter)
			}
			ctx := cmd.Context()
			t, url, err := a.openTransport(ctx)
			if err != nil {
				return err
			}
			defer t.Close()
			opts.Transport = t
			opts.Name = url // redacted by openTransport (transports.Redact)
			opts.Logger = a.logger()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return withCode(exitFailure, fmt.Errorf("dashboard: %w", err))
			}
			h := dashboard.Handler(opts)
			if opts.Token == "" {
				h = dashboard.LoopbackHostOnly(h) // against DNS rebinding
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			a.progressf("Dashboard of %s on %s (Ctrl-C to stop).", url, servedAt(ln.Addr()))
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err := <-served:
				return failed(fmt.Errorf("dashboard: %w", err))
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dashboardShutdown)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return failed(err)
			}
			_ = srv.Close() // ends event streams still open
			<-served
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8089", "address to serve on; one that is not loopback needs --token")
	f.StringVar(&opts.Token, "token", "", "token required on every request (default $BUSLINE_DASHBOARD_TOKEN)")
	f.BoolVar(&opts.ReadOnly, "read-only", false, "refuse replay and purge")
	f.StringSliceVar(&opts.Groups, "group", nil, "consumer groups to show (AMQP, which cannot list its queues)")
	f.DurationVar(&opts.Refresh, "refresh", dashboard.DefaultRefresh, "how often the page refreshes its figures")
	f.DurationVar(&opts.StaleAfter, "stale", dashboard.DefaultStaleAfter, "idle time after which a consumer is shown as stale")
	return cmd
}

// servedAt is the address to open in a browser for a listener on addr:
// its own address, or, for one on every interface (0.0.0.0, [::]), the
// loopback one with a word on the rest.
func servedAt(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return "http://" + addr.String() + "/"
	}
	return fmt.Sprintf("http://127.0.0.1:%d/ (and every other address of this host)", tcp.Port)
}
