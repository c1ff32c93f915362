package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/netx"
)

// body is what the backend answers to every request: 100 bytes, so that
// the benchmark measures proxying and not copying.
var body = []byte(strings.Repeat("skiff router benchmark backend. ", 4)[:99] + "\n")

// backendCmd serves body on several loopback ports until it is signalled,
// and writes their addresses, one a line, to -addrs-file.
//
// It is a minimal HTTP/1.1 server (keep-alive, GET and HEAD, bodies with
// a Content-Length skipped) rather than net/http: net/http spent more CPU
// per request (about 35 µs here) than any of the proxies it stands behind,
// so on two cores it, not the proxies, set both the throughput and the
// tail latency of every run. This one answers with about a third of that,
// so that the figures are the proxies'.
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
	var addrs []string
	for range *ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs = append(addrs, l.Addr().String())
		go serveTrivial(l)
		go func() {
			<-ctx.Done()
			l.Close()
		}()
	}
	if err := writeFileAtomic(*addrsFile, strings.Join(addrs, "\n")+"\n"); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// answer is the backend's whole response to a GET.
var answer = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))

// serveTrivial answers every request of every connection l accepts with
// answer, until l is closed.
func serveTrivial(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetNoDelay(true)
		go trivialConn(netx.Raw(c))
	}
}

func trivialConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4<<10)
	head := len(answer) - len(body)
	for {
		length, keep, get, err := readRequest(br)
		if err != nil {
			if err != io.EOF {
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}
			return
		}
		if _, err := br.Discard(length); err != nil {
			return
		}
		out := answer
		if !get {
			out = answer[:head] // HEAD
		}
		if _, err := c.Write(out); err != nil || !keep {
			return
		}
	}
}

// readRequest reads a request's head: its body's length, whether the
// connection stays open, and whether it is a GET (else a HEAD).
func readRequest(br *bufio.Reader) (length int, keep, get bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && err == io.EOF {
			return 0, false, false, io.EOF
		}
		return 0, false, false, fmt.Errorf("request line: %w", err)
	}
	method, rest, _ := bytes.Cut(line, []byte(" "))
	get = string(method) != "HEAD"
	keep = !bytes.Contains(rest, []byte("HTTP/1.0"))
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, false, fmt.Errorf("header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return length, keep, get, nil
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, false, errors.New("bad Content-Length")
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, false, errors.New("chunked requests are not taken")
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
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
