package skiff

import (
	"fmt"
	"time"
)

// Assignment is one desired instance of a process, placed on a node by the
// scheduler. The agent of that node converges on its assignments.
type Assignment struct {
	ID         string `json:"id"`
	App        string `json:"app"`
	Proc       string `json:"proc"`
	Index      int    `json:"index"`
	Release    int    `json:"release"`
	Generation int    `json:"generation"`
	Node       string `json:"node"`
	Image      Image  `json:"image"`
	Command    string `json:"command"`
	// Size is the process size (1x, 2x…), which sets its limits.
	Size      string    `json:"size,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Once runs the command to its end, without restarts: the release
	// phase. The instance then reports StateExited with its exit code.
	Once bool `json:"once,omitempty"`
}

// Name is the instance's name as users see it: "web.1".
func (a Assignment) Name() string { return ProcessName(a.Proc, a.Index) }

// Key is the assignment's key in the assignments bucket: agents watch the
// prefix of their node.
func (a Assignment) Key() string { return AssignmentKey(a.Node, a.App, a.ID) }

// AssignmentKey is the key of an assignment in the assignments bucket.
func AssignmentKey(node, app, id string) string { return node + "." + app + "." + id }

// ProcessName formats a process type and index as "web.1".
func ProcessName(proc string, index int) string { return fmt.Sprintf("%s.%d", proc, index) }

// InstanceState is the observed state of an instance.
type InstanceState string

// Instance states, in the words Heroku users know.
const (
	StateStarting InstanceState = "starting" // process started, not yet accepting connections
	StateUp       InstanceState = "up"       // running; a web instance accepts connections
	StateCrashed  InstanceState = "crashed"  // exited; waiting to be restarted
	StateStopping InstanceState = "stopping" // being drained and stopped
	StateExited   InstanceState = "exited"   // a process run once ended (Instance.ExitCode)
)

// Instance is an agent's report of one running (or restarting) instance.
type Instance struct {
	ID         string        `json:"id"`
	App        string        `json:"app"`
	Proc       string        `json:"proc"`
	Index      int           `json:"index"`
	Release    int           `json:"release"`
	Generation int           `json:"generation"`
	Node       string        `json:"node"`
	State      InstanceState `json:"state"`
	// Addr is the host:port the router sends traffic to; set for web
	// instances once the port accepts connections.
	Addr     string `json:"addr,omitempty"`
	Port     int    `json:"port,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	// CrashLoop is set when the process keeps dying soon after each start.
	CrashLoop  bool      `json:"crash_loop,omitempty"`
	ExitReason string    `json:"exit_reason,omitempty"`
	NextStart  time.Time `json:"next_start,omitempty"`
	Since      time.Time `json:"since"`
	// Command is set for one-off processes, which have no assignment.
	Command string `json:"command,omitempty"`
	// ExitCode is how a process run once ended (StateExited); -1 if it
	// could not start or was killed.
	ExitCode int `json:"exit_code,omitempty"`
	// Usage is what the instance's current process has used, as its
	// cgroup measures it; nil where the driver does not measure.
	Usage *Usage `json:"usage,omitempty"`
}

// Usage is what an instance's processes have used since it started.
type Usage struct {
	CPUSeconds  float64 `json:"cpu_seconds"`
	Memory      int64   `json:"memory"`      // bytes held now
	MemoryPeak  int64   `json:"memory_peak"` // most bytes held at once
	MemoryLimit int64   `json:"memory_limit,omitempty"`
}

// UsageSample is one measurement of an instance for metering, published
// on UsageSubject: what it used over Interval seconds ending at Time. A
// billing job sums samples per app and hour.
type UsageSample struct {
	App      string    `json:"app"`
	Instance string    `json:"instance"` // web.1
	ID       string    `json:"id"`
	Release  int       `json:"release"`
	Node     string    `json:"node"`
	Time     time.Time `json:"time"`
	Interval float64   `json:"interval"` // seconds
	// CPUSeconds is the CPU time used over the interval.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryByteSeconds is the memory held over the interval, in byte
	// seconds (the memory at the sample times the interval).
	MemoryByteSeconds float64 `json:"memory_byte_seconds"`
	Memory            int64   `json:"memory"`
	MemoryPeak        int64   `json:"memory_peak"`
	// Size is the process size (DefaultSize when empty), for billing.
	Size string `json:"size,omitempty"`
}

// UsageSubject is the subject usage samples of app's instance id are
// published on.
func UsageSubject(app, id string) string { return "usage." + app + "." + id }

// Name is the instance's name as users see it: "web.1".
func (i Instance) Name() string { return ProcessName(i.Proc, i.Index) }

// Key is the instance's key in the instances bucket.
func (i Instance) Key() string { return InstanceKey(i.App, i.ID) }

// InstanceKey is the key of an instance in the instances bucket.
func InstanceKey(app, id string) string { return app + "." + id }

// Node is a machine running skiff roles. Its agent writes the record at
// every heartbeat; the scheduler's leader writes State when it declares
// the node dead; an operator sets Drain. Each writer updates by revision,
// so none overwrites another's field.
type Node struct {
	Name   string   `json:"name"`
	Addr   string   `json:"addr"` // host that app instances on this node are reached at
	Roles  []string `json:"roles"`
	Driver string   `json:"driver,omitempty"`
	// Labels place apps: an app may ask for nodes of a label (region=eu),
	// and an app's instances are spread over the values of the zone and
	// region labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Incarnation names this life of the node's agent; a node declared
	// dead comes back as a new incarnation, after stopping everything the
	// old one ran.
	Incarnation string    `json:"incarnation,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	Heartbeat   time.Time `json:"heartbeat"`
	// Memory is what instances may reserve on the node, in bytes (0: no
	// limit); InstanceMemory is the memory of a 1x process.
	Memory         int64 `json:"memory,omitempty"`
	InstanceMemory int64 `json:"instance_memory,omitempty"`
	CPUs           int   `json:"cpus,omitempty"`
	// Load is the node's 1-minute load average; Instances how many
	// instances its agent runs.
	Load      float64 `json:"load"`
	Instances int     `json:"instances"`
	// DiskTotal is the size of the filesystem of the node's data
	// directory and DiskUsed how much of it is in use, in bytes, as its
	// agent measures them (statfs) at each heartbeat.
	DiskTotal int64 `json:"disk_total,omitempty"`
	DiskUsed  int64 `json:"disk_used,omitempty"`
	// State is NodeDead once the scheduler declared the node dead (its
	// instances were placed elsewhere); empty while it is alive.
	State      NodeState `json:"state,omitempty"`
	StateSince time.Time `json:"state_since,omitempty"`
	// Drain asks for the node's instances to move elsewhere; it takes no
	// new ones.
	Drain bool `json:"drain,omitempty"`
}

// NodeState is the liveness of a node.
type NodeState string

// Node states. Only NodeDead is written into records; the others are what
// the age of the last heartbeat says.
const (
	NodeUp      NodeState = "up"
	NodeSuspect NodeState = "suspect" // silent for a while: takes no new instances
	NodeDead    NodeState = "dead"    // silent past the grace period: its instances were replaced
)

// MemoryFor is the memory a process of size reserves on n.
func (n Node) MemoryFor(size string) int64 { return SizeFactor(size) * n.InstanceMemory }

// HasRole reports whether the node runs role.
func (n Node) HasRole(role string) bool {
	for _, r := range n.Roles {
		if r == role {
			return true
		}
	}
	return false
}
