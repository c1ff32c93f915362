package agent

import (
	"errors"
	"net"
	"strconv"
	"sync"
)

// portPool hands out ports from a range, skipping ports held by our own
// instances and ports something else on the machine listens on.
type portPool struct {
	min, max int
	mu       sync.Mutex
	next     int          // guarded by mu
	used     map[int]bool // guarded by mu
}

func newPortPool(min, max int) *portPool {
	return &portPool{min: min, max: max, next: min, used: map[int]bool{}}
}

var errNoPort = errors.New("no free port left in the agent's port range")

// get returns a free port. It walks the range round-robin so a port just
// released is not handed out again at once.
func (p *portPool) get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i <= p.max-p.min; i++ {
		port := p.next
		if p.next++; p.next > p.max {
			p.next = p.min
		}
		if p.used[port] || !free(port) {
			continue
		}
		p.used[port] = true
		return port, nil
	}
	return 0, errNoPort
}

func (p *portPool) put(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

// free reports whether nothing listens on port, on any address.
func free(port int) bool {
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
