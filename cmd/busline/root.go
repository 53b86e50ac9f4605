package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/all" // every scheme
)

// openTimeout bounds connecting to the broker: a command on a wrong host or
// port (one that accepts and says nothing) gives up after it.
const openTimeout = 10 * time.Second

// quietRedis silences go-redis's own logger, which writes connection
// retries to stderr; the command reports the error once, itself.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// app holds the global flags and the streams of one invocation.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	transport string
	config    string
	json      bool
}

// execute runs the command line args and returns the exit code. It is
// what main calls and what tests call, with their own streams.
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	quietOnce.Do(func() { redis.SetLogger(quietRedis{}) })
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	a.addCompletions(root) // after every command is registered
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := classify(err)
	fmt.Fprintf(stderr, "busline: %v\n", err)
	if code == exitUsage {
		path := "busline"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "busline",
		Short: "Look into and operate a Busline event bus",
		Long: `busline looks into and operates a Busline event bus: what the broker holds,
the events going by, dead letters, firing an event by hand, and a benchmark
against plain Watermill on the same broker.

The transport is --transport, else $BUSLINE_TRANSPORT, else the transport: key
of the configuration file (--config, else $BUSLINE_CONFIG). Passwords in URLs
are never printed.

Exit codes: 0 success, 1 failure, 2 usage, 3 not found, 4 unsupported by the
transport, 5 broker unreachable, 130 interrupted.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version(),
	}
	root.SetVersionTemplate("busline {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%v", err) })
	f := root.PersistentFlags()
	f.StringVar(&a.transport, "transport", "", "broker URL: memory://NAME, redis://HOST:PORT/DB, amqp://USER:PASS@HOST:PORT/ (default $BUSLINE_TRANSPORT, then the config file)")
	f.StringVar(&a.config, "config", "", "YAML configuration file (default $BUSLINE_CONFIG)")
	f.BoolVar(&a.json, "json", false, "print one JSON document for scripts instead of tables")
	root.AddCommand(a.schemaCommand())
	root.AddCommand(a.inspectCommand(), a.tailCommand(), a.deadCommand(), a.fireCommand(), a.benchCommand())
	root.AddCommand(a.dashboardCommand(), a.groupCommand())
	return root
}

// busConfig reads the configuration: the --config file or the environment
// (bus.LoadConfig / bus.ConfigFromEnv), then --transport over it.
func (a *app) busConfig() (bus.Config, error) {
	var cfg bus.Config
	var err error
	if a.config != "" {
		cfg, err = bus.LoadConfig(a.config)
	} else {
		cfg, err = bus.ConfigFromEnv()
	}
	if err != nil {
		return bus.Config{}, withCode(exitUsage, err)
	}
	if a.transport != "" {
		cfg.Transport = a.transport
	}
	return cfg, nil
}

// transportURL returns the transport URL the command works on.
func (a *app) transportURL() (string, error) {
	cfg, err := a.busConfig()
	if err != nil {
		return "", err
	}
	if cfg.Transport == "" {
		return "", usagef("no transport: pass --transport URL, set BUSLINE_TRANSPORT, or name a configuration file with a transport: key (--config or BUSLINE_CONFIG)")
	}
	return cfg.Transport, nil
}

// openTransport opens the transport and returns it with its redacted URL.
func (a *app) openTransport(ctx context.Context) (transports.Transport, string, error) {
	raw, err := a.transportURL()
	if err != nil {
		return nil, "", err
	}
	return a.openURL(ctx, raw)
}

// openURL opens the transport of raw and returns it with its redacted URL.
func (a *app) openURL(ctx context.Context, raw string) (transports.Transport, string, error) {
	return a.openURLAs(ctx, raw, "busline")
}

// openURLAs is openURL for the named service.
func (a *app) openURLAs(ctx context.Context, raw, service string) (transports.Transport, string, error) {
	u, err := transports.ParseURL(raw)
	if err != nil {
		return nil, "", withCode(exitUsage, err)
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	t, err := transports.Open(octx, raw, toolOptions(service, a.logger()))
	if err != nil {
		return nil, "", unavailable(err)
	}
	return t, transports.Redact(u), nil
}

// toolOptions are the options every command opens a transport with. A
// command never moves due scheduled events (NoScheduleMover): moving
// belongs to the services, and a command that took the mover's lease
// would index the schedule for nothing before giving it up on exit. Nor
// does it trim or reconfigure streams (KeepLimits): a URL without the
// deployment's maxlen would cut events the services have not read.
func toolOptions(service string, logger *slog.Logger) transports.OpenOptions {
	return transports.OpenOptions{Service: service, Logger: logger, NoScheduleMover: true, KeepLimits: true}
}

// discardLogger drops every record (shell completion must print nothing).
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// version is the module version of the binary ("v1.2.3", "(devel)" for a
// build from a checkout), with the Go version.
func version() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return v + " (" + runtime.Version() + ")"
}

// logger writes warnings and errors of the transports to stderr.
func (a *app) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// progressf writes a line of progress to stderr.
func (a *app) progressf(format string, args ...any) {
	fmt.Fprintf(a.stderr, format+"\n", args...)
}

// memoryNote is what inspect, tail and fire say (inspect as a note, the
// others on stderr) when url is a memory:// broker: it lives inside one
// process, so a busline command run from a shell sees only its own.
const memoryNote = "memory:// brokers live inside one process: busline sees only the brokers it opened itself"

// isMemory reports whether url names a memory:// broker.
func isMemory(url string) bool { return strings.HasPrefix(strings.ToLower(url), "memory:") }

// noteMemory prints memoryNote with what follows from it, when url is a
// memory:// broker.
func (a *app) noteMemory(url, consequence string) {
	if isMemory(url) {
		a.progressf("note: %s; %s", memoryNote, consequence)
	}
}

// exactArgs is cobra.ExactArgs with a usage exit code and the names of the
// arguments. On a command with subcommands, a first argument that names
// none is an unknown subcommand (with cobra's suggestions), not a count of
// arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(names) == 0 && len(args) > 0 && cmd.HasAvailableSubCommands() {
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // as cobra's root does
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + strings.Join(s, " or ") + "?"
			}
			return usagef("%s", msg)
		}
		if len(args) != len(names) {
			return usagef("%s takes %d argument(s): %v; got %d", cmd.CommandPath(), len(names), names, len(args))
		}
		return nil
	}
}
