package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// body is what the backend answers to every request: 100 bytes, so that
// the benchmark measures proxying and not copying.
var body = []byte(strings.Repeat("skiff router benchmark backend. ", 4)[:99] + "\n")

// backendCmd serves body on several loopback ports until it is signalled,
// and writes their addresses, one a line, to -addrs-file.
func backendCmd(args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	ports := fs.Int("ports", 3, "loopback ports to listen on")
	addrsFile := fs.String("addrs-file", "", "where to write the addresses, one a line (required)")
	fs.Parse(args)
	if *addrsFile == "" || *ports < 1 {
		return errors.New("-addrs-file and -ports ≥ 1 are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{length}
		w.Write(body)
	})
	addrs, err := serve(ctx, *ports, h)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*addrsFile, strings.Join(addrs, "\n")+"\n"); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// serve listens on n loopback ports and serves h on each until ctx ends.
// It returns the addresses at once; the servers stop when ctx ends.
func serve(ctx context.Context, n int, h http.Handler) ([]string, error) {
	var addrs []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, l.Addr().String())
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		go srv.Serve(l)
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
	}
	return addrs, nil
}

// writeFileAtomic writes content to path through a rename, so that a
// script waiting for path never reads half of it.
func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
