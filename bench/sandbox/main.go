// Command sandbox measures what the isolated driver's sandbox costs: the
// median time to start a process and see it exit, in a sandbox and as a
// plain child (as the exec driver runs it), and the memory idle sandboxes
// hold. Run it with bench/sandbox/run.sh, as root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-paas/skiff/internal/isolate"
)

func main() {
	if code, ok := isolate.Init(); ok {
		os.Exit(code)
	}
	n := flag.Int("n", 30, "starts of each kind")
	idle := flag.Int("idle", 50, "idle sandboxes to hold at once")
	flag.Parse()
	if err := run(*n, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, idle int) error {
	dir, err := os.MkdirTemp("", "skiff-bench-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	image := filepath.Join(dir, "image")
	if err := os.Mkdir(image, 0o755); err != nil {
		return err
	}
	spec := func(i int, args ...string) isolate.Spec {
		root := filepath.Join(dir, fmt.Sprintf("root-%d", i))
		os.Mkdir(root, 0o700)
		return isolate.Spec{ID: fmt.Sprintf("bench-%d-%d", os.Getpid(), i), Root: root, Image: image, User: "bench", UID: 299999,
			Args: args, Env: []string{"PATH=/usr/bin:/bin"}, Limits: isolate.Limits{Memory: 512 << 20, CPUWeight: 100, PIDs: 512}}
	}
	var plain, boxed []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		cmd := exec.Command("/bin/bash", "-c", "true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Run(); err != nil {
			return err
		}
		plain = append(plain, time.Since(start))

		start = time.Now()
		s, err := isolate.Start(spec(i, "/bin/bash", "-c", "true"))
		if err != nil {
			return err
		}
		<-s.Done()
		boxed = append(boxed, time.Since(start))
	}
	fmt.Printf("start and exit of bash -c true, n=%d:\n", n)
	fmt.Printf("  exec driver (plain child): median %s\n", median(plain))
	fmt.Printf("  isolated driver (sandbox): median %s\n", median(boxed))
	fmt.Printf("  overhead: median %s (%.1fx)\n", median(boxed)-median(plain), float64(median(boxed))/float64(median(plain)))

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var boxes []*isolate.Sandbox
	defer func() {
		for _, s := range boxes {
			s.Signal(syscall.SIGKILL)
			<-s.Done()
		}
	}()
	for i := 0; i < idle; i++ {
		s, err := isolate.Start(spec(n+i, "/bin/sleep", "1000"))
		if err != nil {
			return err
		}
		boxes = append(boxes, s)
	}
	time.Sleep(time.Second)
	var cg, rss int64
	for _, s := range boxes {
		u, err := s.Usage()
		if err != nil {
			return err
		}
		cg += u.Memory
		rss += rssOf(s.PID())
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	per := float64(cg) / float64(idle)
	fmt.Printf("%d idle sandboxes (sleep):\n", idle)
	fmt.Printf("  memory charged to each sandbox's cgroup: mean %.1f MiB (its init's RSS %.1f MiB, mostly shared binary pages)\n",
		per/(1<<20), float64(rss)/float64(idle)/(1<<20))
	fmt.Printf("  the supervising process's heap grew by %.1f KiB per sandbox\n",
		float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(idle)/1024)
	var si syscall.Sysinfo_t
	syscall.Sysinfo(&si)
	total := float64(si.Totalram) * float64(si.Unit)
	fmt.Printf("  at that size, this machine's %.0f GiB hold about %.0f idle sandboxes by memory\n", total/(1<<30), total/per)
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Microsecond)
}

// rssOf is the resident memory of pid, in bytes.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}
