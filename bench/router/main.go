// Command router is the set of programs behind bench/router/run.sh, the
// benchmark of the Skiff router against nginx and HAProxy on the same
// backend in the same run. Each part is a subcommand, so that each runs as a
// process of its own and the router's process holds nothing but the router:
//
//	backend   the trivial HTTP backend every proxy sends to
//	bus       an embedded bus (NATS with JetStream) listening on loopback
//	seed      writes apps and their web instances into the bus
//	router    the Skiff router, following the bus, with a /debug/stats endpoint
//	load      a fixed-rate load generator that records latency percentiles
//	churn     changes backends at a fixed rate, measures how soon a change is
//	          live, and the router's memory and goroutines before and after
//	freeport  prints free loopback ports, for nginx and HAProxy
//	report    reads a run's results and prints the summary
//
// run.sh builds it, starts the parts and runs wrk; see README.md there.
package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// commands maps each subcommand to its function, which parses its own
// flags from args.
var commands = map[string]func(args []string) error{
	"backend":  backendCmd,
	"bus":      busCmd,
	"seed":     seedCmd,
	"router":   routerCmd,
	"load":     loadCmd,
	"churn":    churnCmd,
	"freeport": freeportCmd,
	"report":   reportCmd,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		names := slices.Sorted(maps.Keys(commands))
		fmt.Fprintf(os.Stderr, "usage: %s SUBCOMMAND [flags]; subcommands: %s\n", os.Args[0], strings.Join(names, ", "))
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "bench router %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
