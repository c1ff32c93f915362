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
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loadConfig is a fixed-rate load: wrk2's model, which wrk (in Debian)
// lacks. Each connection sends at rate/conns on its own schedule; a
// request's latency runs from the moment the schedule meant to send it, so
// a slow response counts against every request queued behind it (no
// coordinated omission).
type loadConfig struct {
	Target   string   // host:port
	Hosts    []string // Host headers, taken in turn
	Rate     float64  // requests per second, all connections together
	Conns    int
	Warmup   time.Duration // sent but not recorded
	Duration time.Duration // recorded; 0 means until the context ends
}

type loadResult struct {
	Requests int             // completed in the recorded window
	All      int             // completed, the warm-up's included
	Non2xx   int             // answered with a status outside 200-299
	Errors   int             // failed to connect, write or read
	Elapsed  time.Duration   // of the recorded window
	Latency  []time.Duration // sorted
}

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(r.Latency)))
	return r.Latency[min(i, len(r.Latency)-1)]
}

// String is the result as key=value lines, which report reads.
func (r loadResult) String() string {
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	var max time.Duration
	if len(r.Latency) > 0 {
		max = r.Latency[len(r.Latency)-1]
	}
	return fmt.Sprintf("rate=%.1f\nrequests=%d\nall_requests=%d\np50_us=%s\np90_us=%s\np99_us=%s\np999_us=%s\nmax_us=%s\nnon2xx=%d\nerrors=%d\n",
		float64(r.Requests)/r.Elapsed.Seconds(), r.Requests, r.All, us(r.percentile(50)), us(r.percentile(90)),
		us(r.percentile(99)), us(r.percentile(99.9)), us(max), r.Non2xx, r.Errors)
}

// loadCmd runs a fixed-rate load and prints its result.
func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "host:port to send to (required)")
	host := fs.String("host", "", "Host header")
	hostsFile := fs.String("hosts-file", "", "file of Host headers, one a line, taken in turn")
	rate := fs.Float64("rate", 1000, "requests per second")
	conns := fs.Int("c", 64, "connections")
	duration := fs.Duration("d", 10*time.Second, "recorded duration")
	warmup := fs.Duration("warmup", 2*time.Second, "sent before recording starts")
	fs.Parse(args)
	if *target == "" || *rate <= 0 || *conns < 1 {
		return errors.New("-target, -rate > 0 and -c ≥ 1 are required")
	}
	hosts, err := hostList(*host, *hostsFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res := runLoad(ctx, loadConfig{Target: *target, Hosts: hosts, Rate: *rate, Conns: *conns, Warmup: *warmup, Duration: *duration})
	fmt.Printf("target_rate=%.1f\n%s", *rate, res)
	return nil
}

// hostList is the Host headers given by -host or, one a line, in a file.
func hostList(host, file string) ([]string, error) {
	if file == "" {
		if host == "" {
			host = "localhost"
		}
		return []string{host}, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	hosts := strings.Fields(string(data))
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s holds no hostname", file)
	}
	return hosts, nil
}

// runLoad sends cfg's load and returns what it recorded.
func runLoad(ctx context.Context, cfg loadConfig) loadResult {
	reqs := make([][]byte, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		reqs[i] = []byte("GET / HTTP/1.1\r\nHost: " + h + "\r\nUser-Agent: skiff-bench-load\r\nAccept: */*\r\n\r\n")
	}
	start := time.Now().Add(50 * time.Millisecond) // time for every connection to open
	recordFrom := start.Add(cfg.Warmup)
	var end time.Time
	if cfg.Duration > 0 {
		end = recordFrom.Add(cfg.Duration)
	}
	interval := time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
	results := make([]loadResult, cfg.Conns)
	var wg sync.WaitGroup
	for c := 0; c < cfg.Conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := &loadConn{target: cfg.Target}
			defer lc.close()
			res := &results[c]
			first := start.Add(interval * time.Duration(c) / time.Duration(cfg.Conns))
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for k := 0; ; k++ {
				due := first.Add(interval * time.Duration(k))
				if !end.IsZero() && !due.Before(end) || ctx.Err() != nil {
					return
				}
				if wait := time.Until(due); wait > 0 {
					timer.Reset(wait)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
				status, err := lc.do(reqs[(c*7919+k)%len(reqs)])
				if err == nil {
					res.All++
				}
				if due.Before(recordFrom) {
					continue
				}
				switch {
				case err != nil:
					res.Errors++
				case status < 200 || status > 299:
					res.Non2xx++
				}
				if err == nil {
					res.Requests++
					res.Latency = append(res.Latency, time.Since(due))
				}
			}
		}()
	}
	wg.Wait()
	var all loadResult
	for _, r := range results {
		all.Requests += r.Requests
		all.All += r.All
		all.Non2xx += r.Non2xx
		all.Errors += r.Errors
		all.Latency = append(all.Latency, r.Latency...)
	}
	if end.IsZero() {
		end = time.Now()
	}
	all.Elapsed = end.Sub(recordFrom)
	slices.Sort(all.Latency)
	return all
}

// loadConn is one keep-alive HTTP/1.1 client connection that reads only
// what it needs of a response: the status, the length and the body.
type loadConn struct {
	target string
	conn   net.Conn
	r      *bufio.Reader
}

func (lc *loadConn) close() {
	if lc.conn != nil {
		lc.conn.Close()
		lc.conn = nil
	}
}

// do sends req and reads the response, reconnecting first if needed.
func (lc *loadConn) do(req []byte) (int, error) {
	if lc.conn == nil {
		c, err := net.DialTimeout("tcp", lc.target, 5*time.Second)
		if err != nil {
			return 0, err
		}
		lc.conn = c
		lc.r = bufio.NewReaderSize(c, 16<<10)
	}
	lc.conn.SetDeadline(time.Now().Add(10 * time.Second))
	status, keep, err := lc.roundTrip(req)
	if err != nil || !keep {
		lc.close()
	}
	return status, err
}

func (lc *loadConn) roundTrip(req []byte) (status int, keep bool, err error) {
	if _, err := lc.conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := lc.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := lc.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case chunked:
		err = lc.discardChunked()
	case length >= 0:
		_, err = lc.r.Discard(length)
	default:
		_, err = io.Copy(io.Discard, lc.r) // the body runs to the end of the connection
		keep = false
	}
	return status, keep, err
}

func (lc *loadConn) discardChunked() error {
	for {
		line, err := lc.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		hexLen, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(hexLen)), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := lc.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := lc.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
