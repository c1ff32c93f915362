// Command skiff is the Skiff platform in one binary: `skiff server` runs
// the platform's roles, and every other subcommand is the CLI, which talks
// to the platform's HTTP API.
package main

import (
	"os"

	"github.com/skiff-paas/skiff/internal/cli"
	"github.com/skiff-paas/skiff/internal/isolate"
)

func main() {
	// A sandbox's first process is this binary again (internal/isolate).
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	root := cli.NewRoot()
	root.AddCommand(serverCommand())
	os.Exit(cli.Main(root, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
