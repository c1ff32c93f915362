// Command cluster runs the multi-host test (test/e2e, TestMultiHostCluster:
// five hosts as network namespaces, nodes killed, cut off, paused and
// drained under load) several times and prints the medians of the figures
// it logs.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/skiff-paas/skiff/bench/benchutil"
)

// figure is a duration the test logs, found by a pattern whose first
// group is the duration.
type figure struct {
	name string
	re   *regexp.Regexp
}

var figures = []figure{
	{"drain of three nodes, until both instances moved", regexp.MustCompile(`drained n1, n2 and n3 in (\S+) `)},
	{"agent node killed: replacement up", regexp.MustCompile(`killed n\d .* and up (\S+) after the kill`)},
	{"agent node killed: every request succeeds again", regexp.MustCompile(`killed n\d .*every request succeeded from (\S+) after`)},
	{"agent node cut off: replacement up", regexp.MustCompile(`cut n\d .* and up (\S+) after the cut`)},
	{"agent node cut off: every request succeeds again", regexp.MustCompile(`cut n\d .*every request succeeded from (\S+) after`)},
	{"link back: the cut-off instance killed", regexp.MustCompile(`stopped (\S+) after the link came back`)},
	{"bus node killed: first acknowledged write", regexp.MustCompile(`first write started after the kill was acknowledged (\S+) after it`)},
	{"scheduler leader killed: another leads", regexp.MustCompile(`logged that its scheduler leads (\S+) after the kill`)},
	{"scheduler leader killed: its node declared dead", regexp.MustCompile(`declared n\d dead (\S+) after the kill`)},
}

// counts are numbers the test logs per run, summed over the runs.
var counts = []figure{
	{"requests failed while an agent node was killed", regexp.MustCompile(`killed n\d .*: (\d+) requests ok, (\d+) failed`)},
	{"requests failed while an agent node was cut off", regexp.MustCompile(`cut n\d .*: (\d+) requests ok, (\d+) failed`)},
	{"requests failed during the drain", regexp.MustCompile(`drained n1.*: (\d+) requests ok, (\d+) failed`)},
}

func main() {
	runs := flag.Int("n", 5, "how many runs")
	flag.Parse()
	got := map[string][]time.Duration{}
	sums := map[string][2]int{}
	passed := 0
	for i := 1; i <= *runs; i++ {
		cmd := exec.Command("go", "test", "./test/e2e/", "-run", "^TestMultiHostCluster$", "-count=1", "-v", "-timeout", "15m")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err == nil {
			passed++
		}
		if err == nil {
			fmt.Fprintf(os.Stderr, "run %d: passed\n", i)
		} else {
			f, ferr := os.CreateTemp("", "skiff-cluster-run-*.log")
			if ferr == nil {
				f.Write(out.Bytes())
				f.Close()
				fmt.Fprintf(os.Stderr, "run %d: FAILED; its output is in %s\n", i, f.Name())
			}
		}
		sc := bufio.NewScanner(&out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for _, f := range figures {
				if m := f.re.FindStringSubmatch(line); m != nil {
					if d, err := time.ParseDuration(m[1]); err == nil {
						got[f.name] = append(got[f.name], d)
					}
				}
			}
			for _, f := range counts {
				if m := f.re.FindStringSubmatch(line); m != nil {
					ok, _ := strconv.Atoi(m[1])
					failed, _ := strconv.Atoi(m[2])
					s := sums[f.name]
					sums[f.name] = [2]int{s[0] + ok, s[1] + failed}
				}
			}
		}
	}
	fmt.Printf("%d runs, %d passed\n\n", *runs, passed)
	for _, f := range figures {
		ds := got[f.name]
		if len(ds) == 0 {
			fmt.Printf("%-52s (not seen)\n", f.name)
			continue
		}
		fmt.Printf("%-52s %s\n", f.name, benchutil.Stats(ds))
	}
	fmt.Println()
	for _, f := range counts {
		s := sums[f.name]
		fmt.Printf("%-52s %d of %d\n", f.name, s[1], s[0]+s[1])
	}
}
