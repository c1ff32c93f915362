package isolate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// cgroup is a sandbox's control group, on whichever version the host has.
type cgroup interface {
	add(pid int) error
	usage() (Usage, error)
	oomKills() uint64
	delete() error
}

// CgroupVersion is the cgroup version sandboxes get when their spec does
// not choose: "v2" on a host whose controllers are all on the unified
// hierarchy, "v1" on a host that mounts them as v1 (a hybrid host too),
// "" when the host has no cgroups.
func CgroupVersion() string {
	switch cgroups.Mode() {
	case cgroups.Unified:
		return "v2"
	case cgroups.Legacy, cgroups.Hybrid:
		return "v1"
	}
	return ""
}

func newCgroup(version, name string, l Limits) (cgroup, error) {
	if version == "" {
		version = CgroupVersion()
	}
	switch version {
	case "v1":
		return newV1(name, l)
	case "v2":
		return newV2(name, l)
	case "":
		return nil, errors.New("this host has no cgroups: mount them, or run the agent with the exec driver")
	}
	return nil, fmt.Errorf("unknown cgroup version %q (v1 or v2)", version)
}

// v1Controllers are the v1 hierarchies a sandbox joins.
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids, cgroup1.Freezer}

type v1 struct{ cg cgroup1.Cgroup }

// v1Hierarchy is the v1 hierarchies of v1Controllers that the host has.
func v1Hierarchy() ([]cgroup1.Subsystem, error) {
	all, err := cgroup1.Default()
	if err != nil {
		return nil, err
	}
	var subs []cgroup1.Subsystem
	for _, s := range all {
		if slices.Contains(v1Controllers, s.Name()) {
			subs = append(subs, s)
		}
	}
	return subs, nil
}

func newV1(name string, l Limits) (cgroup, error) {
	res := &specs.LinuxResources{}
	if l.Memory > 0 {
		res.Memory = &specs.LinuxMemory{Limit: &l.Memory}
	}
	if l.CPUWeight > 0 {
		shares := weightToShares(l.CPUWeight)
		res.CPU = &specs.LinuxCPU{Shares: &shares}
	}
	if l.PIDs > 0 {
		res.Pids = &specs.LinuxPids{Limit: &l.PIDs}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath("/"+name), res, cgroup1.WithHierarchy(v1Hierarchy))
	if err != nil {
		return nil, fmt.Errorf("make cgroup (v1) %s: %w", name, err)
	}
	return v1{cg}, nil
}

// weightToShares maps a cgroup v2 CPU weight (1-10000, 100 by default)
// to v1 CPU shares (2-262144, 1024 by default).
func weightToShares(w uint64) uint64 { return max(2, w*1024/100) }

func (c v1) add(pid int) error { return c.cg.AddProc(uint64(pid)) }

func (c v1) usage() (Usage, error) {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	if m.CPU != nil && m.CPU.Usage != nil {
		u.CPU = time.Duration(m.CPU.Usage.Total)
	}
	if m.Memory != nil && m.Memory.Usage != nil {
		u.Memory, u.MemoryPeak = int64(m.Memory.Usage.Usage), int64(m.Memory.Usage.Max)
	}
	return u, nil
}

func (c v1) oomKills() uint64 {
	m, err := c.cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil || m.MemoryOomControl == nil {
		return 0
	}
	return m.MemoryOomControl.OomKill
}

func (c v1) delete() error { return c.cg.Delete() }

type v2 struct{ m *cgroup2.Manager }

func newV2(name string, l Limits) (cgroup, error) {
	mount, err := unifiedMount()
	if err != nil {
		return nil, err
	}
	res := &cgroup2.Resources{}
	if l.Memory > 0 {
		res.Memory = &cgroup2.Memory{Max: &l.Memory}
	}
	if l.CPUWeight > 0 {
		res.CPU = &cgroup2.CPU{Weight: &l.CPUWeight}
	}
	if l.PIDs > 0 {
		res.Pids = &cgroup2.Pids{Max: l.PIDs}
	}
	if want := res.EnabledControllers(); len(want) > 0 {
		have, err := os.ReadFile(mount + "/cgroup.controllers")
		if err != nil {
			return nil, err
		}
		for _, c := range want {
			if !slices.Contains(strings.Fields(string(have)), c) {
				return nil, fmt.Errorf("the %s controller is not on this host's cgroup v2 hierarchy (%s): it is mounted as v1; use cgroup v1", c, mount)
			}
		}
	}
	m, err := cgroup2.NewManager(mount, "/"+name, res)
	if err != nil {
		return nil, fmt.Errorf("make cgroup (v2) %s: %w", name, err)
	}
	return v2{m}, nil
}

// unifiedMount finds where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
// one.
func unifiedMount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

func (c v2) add(pid int) error { return c.m.AddProc(uint64(pid)) }

func (c v2) usage() (Usage, error) {
	m, err := c.m.Stat()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	if m.CPU != nil {
		u.CPU = time.Duration(m.CPU.UsageUsec) * time.Microsecond
	}
	if m.Memory != nil {
		u.Memory, u.MemoryPeak = int64(m.Memory.Usage), int64(m.Memory.MaxUsage)
	}
	return u, nil
}

func (c v2) oomKills() uint64 {
	m, err := c.m.Stat()
	if err != nil || m.MemoryEvents == nil {
		return 0
	}
	return m.MemoryEvents.OomKill
}

func (c v2) delete() error { return c.m.Delete() }

// Reap ends every process left in the cgroup of sandbox id, on either
// version, and removes the cgroup: what an agent that died leaves behind.
// It reports how many processes it killed; a sandbox that left nothing
// is no error.
func Reap(id string) (int, error) {
	name := "/skiff/" + id
	killed := 0
	var errs []error
	if cg, err := cgroup1.Load(cgroup1.StaticPath(name), cgroup1.WithHierarchy(v1Hierarchy)); err == nil {
		// Frozen, nothing in it can fork while it is killed.
		_ = cg.Freeze()
		procs, _ := cg.Processes(cgroup1.Pids, true)
		for _, p := range procs {
			if syscall.Kill(p.Pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		_ = cg.Thaw()
		errs = append(errs, settle(cg.Delete))
	}
	if mount, err := unifiedMount(); err == nil {
		if _, err := os.Stat(filepath.Join(mount, name)); err == nil {
			m, err := cgroup2.Load(name, cgroup2.WithMountpoint(mount))
			if err == nil {
				procs, _ := m.Procs(true)
				killed += len(procs)
				_ = m.Kill()
				errs = append(errs, settle(m.Delete))
			}
		}
	}
	return killed, errors.Join(errs...)
}

// settle retries removing a cgroup while its killed processes die.
func settle(remove func() error) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = remove(); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}
