// Command crmpulse is the live CRM user-activity report: one binary that
// runs the whole service (serve), loads history (import, users import), and
// in larger set-ups each role on its own.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signalContext()
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// signalContext is cancelled by the first SIGINT or SIGTERM, which starts a
// graceful shutdown; a second signal forces the exit.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "crmpulse: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

// run is the program as a function: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "crmpulse",
		Short:         "Live CRM user-activity report",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(), importCmd(), usersCmd(), versionCmd(), ingestCmd(), workerCmd(), webCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		var exit exitError
		if asExit(err, &exit) {
			return int(exit)
		}
		fmt.Fprintln(stderr, "crmpulse:", err)
		return 1
	}
	return 0
}

// exitError ends the program with a status, its message already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, target *exitError) bool {
	e, ok := err.(exitError)
	if ok {
		*target = e
	}
	return ok
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and build information",
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "crmpulse", version)
			return nil
		},
	}
}
