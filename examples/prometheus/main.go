// Command prometheus shows a service that exposes, on one HTTP server,
// everything an operator scrapes or probes:
//
//   - /metrics: the bus's OpenTelemetry metrics (fired, consumed, durations,
//     retries, dead letters, lag, pending) through the OpenTelemetry
//     Prometheus exporter, next to the Go runtime metrics of the Prometheus
//     client;
//   - /healthz and /readyz: the bus's liveness and readiness probes;
//   - /busline/: the Busline dashboard mounted inside the application, with
//     the broker-side gauges of its own on /busline/metrics.
//
// Run it and open http://127.0.0.1:2112/metrics:
//
//	go run ./examples/prometheus
//
// It fires an event per second on the in-memory transport; set
// BUSLINE_TRANSPORT (for example redis://127.0.0.1:6379/0) to use a real
// broker. With -check it fires a few events, prints the busline lines of
// its own /metrics and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/dashboard"
	_ "github.com/busline/busline/transports/all"
)

// PriceChanged is the payload of competitor_prices.changed.
type PriceChanged struct {
	Product string  `json:"product"`
	Price   float64 `json:"price"`
}

// PricesChanged is fired when a competitor changes a price.
var PricesChanged = bus.NewEvent[PriceChanged]("competitor_prices", "changed")

func main() {
	listen := flag.String("listen", "127.0.0.1:2112", "address of the metrics, health and dashboard server")
	check := flag.Bool("check", false, "fire a few events, print the busline metrics and exit")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *check, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, check bool, out io.Writer) error {
	// The exporter is a metric reader that registers with the Prometheus
	// client's default registry; promhttp serves that registry.
	exporter, err := otelprom.New()
	if err != nil {
		return err
	}
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer meters.Shutdown(context.Background())

	transport := os.Getenv("BUSLINE_TRANSPORT")
	if transport == "" {
		transport = "memory://"
	}
	b, err := bus.New(bus.Config{
		Service: "price-monitor", Transport: transport, MeterProvider: meters,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer b.Close()
	handled := make(chan string, 16)
	err = bus.Listen(b, PricesChanged, "send-price-alerts", func(_ context.Context, d bus.Delivery[PriceChanged]) error {
		select {
		case handled <- d.ID:
		default:
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.Start(ctx); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.Handle("/healthz", b.HealthHandler())
	mux.Handle("/readyz", b.HealthHandler())
	mux.Handle("/busline/", http.StripPrefix("/busline", dashboard.Handler(dashboard.Options{
		Transport: b.Transport(),
		Name:      "price-monitor", // never the raw URL: it may carry a password
		Token:     os.Getenv("BUSLINE_DASHBOARD_TOKEN"),
	})))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close()
		<-served
	}()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(os.Stderr, "metrics %s/metrics, probes %s/healthz %s/readyz, dashboard %s/busline/\n", base, base, base, base)

	if check {
		for i := range 3 {
			if _, err := bus.Fire(ctx, b, PricesChanged, PriceChanged{Product: "kettle", Price: 20 + float64(i)}); err != nil {
				return err
			}
			select {
			case <-handled:
			case <-time.After(10 * time.Second):
				return errors.New("an event was not handled within 10 s")
			}
		}
		return printMetrics(base+"/metrics", out)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return err
		case <-tick.C:
			if _, err := bus.Fire(ctx, b, PricesChanged, PriceChanged{Product: "kettle", Price: 20 + float64(i%7)}); err != nil {
				slog.Warn("fire failed", slog.Any("error", err))
			}
		}
	}
}

// printMetrics prints the busline and messaging metrics, histogram buckets left out.
func printMetrics(url string, out io.Writer) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if (strings.HasPrefix(line, "messaging_") || strings.HasPrefix(line, "busline_")) && !strings.Contains(line, "_bucket{") {
			fmt.Fprintln(out, line)
		}
	}
	return nil
}
