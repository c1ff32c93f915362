package router

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// miniBackend answers every request on a connection with a fixed
// response; it allocates nothing per request, so that a benchmark counts
// the router's allocations.
func miniBackend(b *testing.B) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n")
	return rawBackend(b, func(c net.Conn, br *bufio.Reader) {
		for {
			// The head ends with an empty line; requests have no body.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// BenchmarkProxiedRequest measures one keep-alive GET through the router
// (client, router and backend in this process; the client and backend
// allocate nothing).
func BenchmarkProxiedRequest(b *testing.B) {
	e := startB(b)
	e.app("bench", 1)
	e.instance("bench", "b1", 1, skiff.StateUp, miniBackend(b))
	eventually(b, func() bool {
		rt := e.r.table.Load().lookup([]byte("bench.apps.test"))
		return rt != nil && len(rt.route.Load().backends) == 1
	})
	c, err := net.Dial("tcp", e.r.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: bench.apps.test\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(c)
	body := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if n < 0 || n > len(body) {
			b.Fatalf("content length %d", n)
		}
		if _, err := io.ReadFull(br, body[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	v := newView("apps.test")
	bt := &batch{apps: map[string]bool{}}
	for i := 0; i < 10000; i++ {
		name := "app" + strconv.Itoa(i)
		v.apply(change{bucket: skiff.BucketApps, key: name, value: skiff.App{Name: name}}, bt)
	}
	tab := v.update(bt)
	hosts := make([][]byte, 10000)
	for i := range hosts {
		hosts[i] = []byte("app" + strconv.Itoa(i*7919%10000) + ".apps.test") // spread over the table
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if tab.lookup(hosts[i%len(hosts)]) == nil {
			b.Fatal("not found")
		}
	}
}
