package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/router"
)

// routerCmd runs the Skiff router, following the bus, until it is
// signalled. Once the router is ready it writes its address to -addr-file.
// A second listener serves /debug/stats (goroutines, heap and RSS after a
// collection) and /debug/pprof/ for the churn scenario and for whoever
// wants to look closer; it writes its address to -debug-file.
//
// Only router.New, Config, Run, Ready and Addr are used, so the benchmark
// keeps working while the router's insides change.
func routerCmd(args []string) error {
	fs := flag.NewFlagSet("router", flag.ExitOnError)
	info := fs.String("bus-file", "", "the bus's info file (required)")
	domain := fs.String("domain", "bench.test", "platform domain")
	addrFile := fs.String("addr-file", "", "where to write the router's address once ready (required)")
	debugFile := fs.String("debug-file", "", "where to write the debug listener's address (required)")
	fs.Parse(args)
	if *info == "" || *addrFile == "" || *debugFile == "" {
		return errors.New("-bus-file, -addr-file and -debug-file are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, *info, "bench-router")
	if err != nil {
		return err
	}
	defer st.NC.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := router.New(router.Config{Addr: "127.0.0.1:0", Domain: *domain, Logger: log}, st)
	if err != nil {
		return err
	}

	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/stats", statsHandler)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	dsrv := &http.Server{Handler: mux}
	go dsrv.Serve(dl)
	defer dsrv.Close()

	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for !r.Ready() {
		select {
		case err := <-done:
			return fmt.Errorf("router stopped before it was ready: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("router not ready within 60s")
		}
	}
	if err := writeFileAtomic(*debugFile, dl.Addr().String()+"\n"); err != nil {
		return err
	}
	if err := writeFileAtomic(*addrFile, r.Addr()+"\n"); err != nil {
		return err
	}
	return <-done
}

// stats are a process's figures after a full collection.
type stats struct {
	Goroutines int
	HeapAlloc  uint64 // bytes of live objects
	HeapInuse  uint64 // bytes in spans holding them
	RSS        uint64 // resident set of the process, after returning free memory to the OS
}

// statsHandler collects garbage, returns free memory to the OS and
// answers with the figures as key=value lines.
func statsHandler(w http.ResponseWriter, _ *http.Request) {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := stats{Goroutines: runtime.NumGoroutine(), HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, RSS: rss()}
	fmt.Fprintf(w, "goroutines=%d\nheap_alloc=%d\nheap_inuse=%d\nrss=%d\n", s.Goroutines, s.HeapAlloc, s.HeapInuse, s.RSS)
}

// rss is VmRSS from /proc/self/status, in bytes.
func rss() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseUint(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fetchStats reads a router's /debug/stats.
func fetchStats(debugAddr string) (stats, error) {
	var s stats
	resp, err := http.Get("http://" + debugAddr + "/debug/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	kv, err := parseKV(resp.Body)
	if err != nil {
		return s, err
	}
	s.Goroutines = int(kv.num("goroutines"))
	s.HeapAlloc = uint64(kv.num("heap_alloc"))
	s.HeapInuse = uint64(kv.num("heap_inuse"))
	s.RSS = uint64(kv.num("rss"))
	return s, nil
}
