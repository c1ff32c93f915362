package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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

// The load is sent by a few event loops (loadThreads), each on an OS
// thread of its own with an epoll set of its connections, as wrk2 does,
// rather than by a goroutine and a timer per connection: Go's timers
// sleep in its network poller, which waits in whole milliseconds, so a
// request due in 300 µs may be sent a millisecond late, and that lateness
// counted as latency (a direct run at 2,000 req/s measured a p50 of 600 µs
// that way).
//
// A loop wakes every loadTick: it takes the answers that came meanwhile,
// then sends the requests that are due. It does not wake for each answer:
// at a fixed rate every wake-up is a context switch, and a generator that
// woke for each request and each answer cost more CPU per request than the
// proxies it measured, leaving the machine busier than the rate implied.
// Answers are timed by the kernel instead (SO_TIMESTAMPNS: when the
// answer's last bytes reached the socket), so reading them up to a tick
// late changes nothing. A request's latency runs from when it was due
// (no coordinated omission: when the previous answer on its connection
// came after that, the wait counts), but the generator's own lateness in
// sending — a request due while its connection was free, sent at the next
// tick — does not count.

// loadThreads is how many event loops send the load.
const loadThreads = 2

// loadTick is how often a loop wakes.
const loadTick = 100 * time.Microsecond

// loadTimeout is how long a request may wait for its answer before it
// counts as an error and its connection is closed.
const loadTimeout = 10 * time.Second

// runLoad sends cfg's load and returns what it recorded.
func runLoad(ctx context.Context, cfg loadConfig) loadResult {
	reqs := make([][]byte, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		reqs[i] = []byte("GET / HTTP/1.1\r\nHost: " + h + "\r\nUser-Agent: skiff-bench-load\r\nAccept: */*\r\n\r\n")
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.Target)
	if err != nil || addr.IP.To4() == nil {
		fmt.Fprintf(os.Stderr, "load: %s is not an IPv4 address and port\n", cfg.Target)
		return loadResult{Errors: 1}
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	start := time.Now().Add(50 * time.Millisecond) // time for every connection to open
	recordFrom := start.Add(cfg.Warmup)
	var end time.Time
	if cfg.Duration > 0 {
		end = recordFrom.Add(cfg.Duration)
	}
	interval := time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
	threads := min(loadThreads, cfg.Conns)
	results := make([]loadResult, threads)
	var wg sync.WaitGroup
	for t := range threads {
		l := &loadLoop{ctx: ctx, sa: sa, reqs: reqs, interval: int64(interval), recordFrom: recordFrom.UnixNano(), res: &results[t]}
		if !end.IsZero() {
			l.end = end.UnixNano()
		}
		for c := t; c < cfg.Conns; c += threads {
			first := start.Add(interval * time.Duration(c) / time.Duration(cfg.Conns))
			l.conns = append(l.conns, &loadConn{fd: -1, first: first.UnixNano(), due: first.UnixNano(), index: c})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.run()
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

// loadLoop is one event loop and its connections. Times are Unix
// nanoseconds, the kernel's timestamps' clock.
type loadLoop struct {
	ctx        context.Context
	sa         unix.Sockaddr
	reqs       [][]byte
	conns      []*loadConn
	interval   int64
	recordFrom int64
	end        int64 // 0: until ctx ends
	res        *loadResult
	epfd       int
	byFD       map[int]*loadConn
	oob        [64]byte
}

// loadConn is one keep-alive HTTP/1.1 client connection and its schedule:
// request k is due at first + k*interval.
type loadConn struct {
	fd    int // -1: not connected
	index int // among all connections, for the Host it takes
	first int64
	k     int64
	due   int64
	// begin is when the request under way counts from: when it was due,
	// less the generator's own lateness in sending it.
	begin int64
	// answered is when the last answer came (0: none yet).
	answered int64
	busy     bool // a request was sent and its answer is awaited
	buf      [16 << 10]byte
	n        int // bytes of the answer in buf
}

func (l *loadLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "load: epoll:", err)
		l.res.Errors++
		return
	}
	defer unix.Close(l.epfd)
	l.byFD = map[int]*loadConn{}
	defer func() {
		for _, c := range l.conns {
			l.close(c)
		}
	}()
	events := make([]unix.EpollEvent, len(l.conns))
	for l.ctx.Err() == nil {
		n, err := epollPoll(l.epfd, events)
		if err != nil {
			fmt.Fprintln(os.Stderr, "load: epoll:", err)
			l.res.Errors++
			return
		}
		for _, ev := range events[:n] {
			if c := l.byFD[int(ev.Fd)]; c != nil {
				l.readable(c)
			}
		}
		now := time.Now().UnixNano()
		next, busy := int64(0), false
		for _, c := range l.conns {
			if c.busy && now-c.due > int64(loadTimeout) {
				l.failed(c, now)
			}
			if c.busy {
				busy = true
				continue
			}
			if l.end != 0 && c.due >= l.end {
				continue // this connection is done
			}
			if c.due <= now {
				l.send(c, now)
				busy = busy || c.busy
				continue
			}
			if next == 0 || c.due < next {
				next = c.due
			}
		}
		if next == 0 && !busy {
			return // every connection is done
		}
		// Sleep a tick while answers are awaited; else until the next
		// request is due, at most a tick.
		sleep := int64(loadTick)
		if !busy && next-now < sleep {
			sleep = max(next-now, 0)
		}
		ts := unix.NsecToTimespec(sleep)
		unix.Nanosleep(&ts, nil)
	}
}

// send sends c's due request at now, connecting first if needed.
func (l *loadLoop) send(c *loadConn, now int64) {
	if c.fd < 0 && !l.connect(c) {
		l.failed(c, now)
		return
	}
	req := l.reqs[(int64(c.index)*7919+c.k)%int64(len(l.reqs))]
	if n, err := unix.Write(c.fd, req); err != nil || n != len(req) {
		l.failed(c, now) // a fresh request fits any socket's buffer
		return
	}
	// The wait for the previous answer past the due time counts; the
	// generator's lateness after that does not.
	c.begin = now - max(c.answered-c.due, 0)
	c.busy, c.n = true, 0
}

// connect opens c's connection, blocking: it is rare (the first request,
// or after the target closed one).
func (l *loadLoop) connect(c *loadConn) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	ok := unix.Connect(fd, l.sa) == nil &&
		unix.SetNonblock(fd, true) == nil &&
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) == nil &&
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil &&
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}) == nil
	if !ok {
		unix.Close(fd)
		return false
	}
	c.fd = fd
	l.byFD[fd] = c
	return true
}

func (l *loadLoop) close(c *loadConn) {
	if c.fd >= 0 {
		delete(l.byFD, c.fd)
		unix.Close(c.fd) // closing removes it from the epoll set
		c.fd = -1
	}
}

// advance moves c to its next request; its last one ended at end.
func (l *loadLoop) advance(c *loadConn, end int64) {
	c.busy = false
	c.answered = end
	c.k++
	c.due = c.first + l.interval*c.k
}

// failed counts c's request as an error and closes its connection.
func (l *loadLoop) failed(c *loadConn, now int64) {
	if c.due >= l.recordFrom {
		l.res.Errors++
	}
	l.close(c)
	l.advance(c, now)
}

// readable reads what c's connection has, and ends its request once the
// whole answer is in.
func (l *loadLoop) readable(c *loadConn) {
	n, oobn, _, _, err := unix.Recvmsg(c.fd, c.buf[c.n:], l.oob[:], 0)
	if err == unix.EAGAIN {
		return
	}
	now := time.Now().UnixNano()
	if err != nil || n == 0 || !c.busy {
		// Closed, failed, or sent something unasked.
		if c.busy {
			l.failed(c, now)
		} else {
			l.close(c)
		}
		return
	}
	c.n += n
	status, size, keep, err := parseAnswer(c.buf[:c.n])
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "load:", err)
		l.failed(c, now)
		return
	case size < 0:
		if c.n == len(c.buf) {
			l.failed(c, now) // a head larger than the buffer
		}
		return // not all in yet
	case c.n < size:
		return
	case c.n > size:
		l.failed(c, now) // more than the answer: nothing was pipelined
		return
	}
	at := rxTime(l.oob[:oobn])
	if at == 0 || at > now {
		at = now
	}
	l.res.All++
	if c.due >= l.recordFrom {
		l.res.Requests++
		if status < 200 || status > 299 {
			l.res.Non2xx++
		}
		l.res.Latency = append(l.res.Latency, time.Duration(max(at-c.begin, 0)))
	}
	if !keep {
		l.close(c)
	}
	l.advance(c, at)
}

// rxTime is the kernel's receive time (SCM_TIMESTAMPNS) in the control
// messages oob, in Unix nanoseconds; 0 if there is none.
func rxTime(oob []byte) int64 {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		oob = oob[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// parseAnswer reads the head of an HTTP/1.1 answer at the start of b: its
// status, its whole size (head and body; -1 while the head is not all
// in), and whether the connection stays open. Bodies must have a
// Content-Length: the benchmark's backend sends one, and the proxies
// pass it on.
func parseAnswer(b []byte) (status, size int, keep bool, err error) {
	headEnd := bytes.Index(b, []byte("\r\n\r\n"))
	if headEnd < 0 {
		return 0, -1, false, nil
	}
	head := b[:headEnd]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = line[7] == '1'
	length := -1
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, 0, false, errors.New("a chunked answer: the load generator reads Content-Length bodies only")
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	if status == 204 || status == 304 {
		length = 0
	}
	if length < 0 {
		return 0, 0, false, errors.New("an answer without Content-Length")
	}
	return status, headEnd + 4 + length, keep, nil
}

// epollPoll returns the events ready now, without waiting.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, err := unix.EpollWait(epfd, events, 0)
	if err == unix.EINTR {
		return 0, nil
	}
	return n, err
}
