package scheduler

import (
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// phased is app "a" serving v1, with v2 deploying and a release command.
func phased(done bool) *world {
	w := newWorld("n1").app("a", 1).release("a", 1, skiff.ReleaseSucceeded, "web").release("a", 2, skiff.ReleaseDeploying, "web").
		instance("a", "web", 1, 1, 0, "n1", skiff.StateUp)
	rels := w.s.Releases["a"]
	rels[1].Value.ReleaseCommand, rels[1].Value.PhaseDone = "./migrate", done
	return w
}

// phase adds v2's release phase assignment, and its report unless state is "".
func (w *world) phase(state skiff.InstanceState, code int) *world {
	a := skiff.Assignment{ID: "phase", App: "a", Proc: skiff.ReleaseProcess, Index: 1, Release: 2, Node: "n1", Once: true, Command: "./migrate"}
	w.s.Assignments[a.ID] = a
	if state != "" {
		w.s.Instances[a.ID] = skiff.Instance{ID: a.ID, App: "a", Proc: a.Proc, Index: 1, Release: 2, State: state, ExitCode: code,
			ExitReason: map[bool]string{true: "exit status 0", false: "exit status 3"}[code == 0]}
	}
	return w
}

func TestReleasePhase(t *testing.T) {
	tests := []struct {
		name  string
		world *world
		want  string
	}{
		{"the release command runs first, alone", phased(false), "+release.1@v2/g0/n1"},
		{"nothing else while it runs", phased(false).phase(skiff.StateUp, 0), ""},
		{"its success lets the processes start", phased(false).phase(skiff.StateExited, 0), "-release.1@v2/g0 v2=deploying"},
		{"its failure fails the release, the old one serving", phased(false).phase(skiff.StateExited, 3), "-release.1@v2/g0 v2=failed"},
		{"once done, the processes start", phased(true), "+web.1@v2/g0/n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summary(tt.world.plan()); got != tt.want {
				t.Fatalf("plan:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	p := phased(false).phase(skiff.StateExited, 0).plan()
	if !p.Statuses[0].Release.PhaseDone || !p.Statuses[0].Release.DeployStarted.Equal(t0) {
		t.Fatalf("status after the phase: %+v", p.Statuses[0].Release)
	}
	p = phased(false).phase(skiff.StateExited, 3).plan()
	if r := p.Statuses[0].Release; !strings.Contains(r.StatusReason, "the release command `./migrate` failed (exit status 3)") {
		t.Fatalf("failure reason %q", r.StatusReason)
	}
	if p.Create = phased(false).plan().Create; !p.Create[0].Once || p.Create[0].Command != "./migrate" {
		t.Fatalf("phase assignment %+v", p.Create[0])
	}
}
