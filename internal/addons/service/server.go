package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/backoff"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// Restart policy: a server that fails waits backoffBase before its next
// start, doubled for each failure in a row, at most backoffMax; one that
// stays up for stableAfter has its count reset.
const (
	backoffBase   = time.Second
	backoffMax    = 30 * time.Second
	stableAfter   = time.Minute
	probeInterval = 200 * time.Millisecond
	// waitInterval is how often a server that waits for something outside
	// it (a replica for its primary's address) tries again.
	waitInterval = time.Second
	// pruneInterval is how often old log files are pruned.
	pruneInterval = 10 * time.Minute
)

// Files of a volume that belong to the host.
const (
	portFile = "port"       // the server's port, chosen once
	kindFile = "kind"       // postgres or redis: what the data is
	logFile  = "server.log" // the server's own output
	maxLog   = 10 << 20     // server.log is set aside at a start past this size
	tailMax  = 10           // lines of output kept in a failure's Error
	tailSize = 8 << 10      // bytes of output read for them
	superPW  = ".superuser" // the superuser password last applied, sealed
)

// server is one service under supervision. retire, retired and pending
// belong to the host's loop; the rest to the supervisor goroutine.
type server struct {
	name    string
	dir     string // the volume
	update  chan skiff.Service
	retire  chan struct{} // closed when the record is deleted
	retired bool
	pending *skiff.Service // a record written again while retiring

	h        *Host
	svc      skiff.Service // the settings the server runs (or will run) with
	gone     bool          // no record: only clean up
	eng      engine
	port     int
	stat     skiff.ServiceStatus  // the current status
	reported *skiff.ServiceStatus // the status last written, if known
	fails    int                  // failures in a row
	log      *slog.Logger
}

type outcome int

const (
	exited       outcome = iota // the server ended by itself
	stopped                     // the host is stopping
	retired                     // the record was deleted
	reconfigured                // the record changed: start again at once
)

func (h *Host) newServer(name string, svc *skiff.Service) *server {
	s := &server{name: name, dir: filepath.Join(h.cfg.Dir, name), update: make(chan skiff.Service, 1),
		retire: make(chan struct{}), h: h, log: h.log.With("service", name)}
	if svc == nil {
		s.gone = true
		s.retired = true
		close(s.retire)
	} else {
		s.svc = *svc
	}
	return s
}

// push hands the supervisor a newer record, replacing one it has not
// taken yet. Only the host's loop calls it.
func (s *server) push(v skiff.Service) {
	for {
		select {
		case s.update <- v:
			return
		default:
		}
		select {
		case <-s.update:
		default:
		}
	}
}

// supervise runs the service until its record is deleted (then removes
// it) or ctx ends (then stops it).
func (s *server) supervise(ctx context.Context) {
	s.stat = skiff.ServiceStatus{Name: s.name, Node: s.h.cfg.Node, Generation: s.svc.Generation}
	for {
		if isClosed(s.retire) {
			s.remove()
			return
		}
		var why string
		proc, err := s.start(ctx)
		var wait *waitError
		switch {
		case ctx.Err() != nil:
			if proc != nil {
				s.stop(proc)
			}
			return
		case errors.As(err, &wait):
			s.setState(skiff.ServiceStarting, wait.Error())
			s.report(ctx)
			if out := s.pause(ctx, waitInterval); out != exited {
				if out == retired {
					s.remove()
				}
				return
			}
			continue
		case err != nil:
			why = "could not start: " + err.Error()
			s.log.Warn("could not start the server", "err", err)
		default:
			out, reason := s.run(ctx, proc)
			switch out {
			case stopped:
				// The volume stays: the node is restarting, not losing its data.
				s.setState(skiff.ServiceFailed, fmt.Sprintf("stopped: the service host on node %s is stopping; it starts the server again when it comes back", s.h.cfg.Node))
				s.report(context.WithoutCancel(ctx))
				return
			case retired:
				s.remove()
				return
			case reconfigured:
				continue
			}
			why = reason
			s.log.Warn("server exited", "reason", reason)
		}
		s.fails++
		delay := backoff.Doubling(s.fails, backoffBase, backoffMax)
		s.stat.Restarts++
		s.setState(skiff.ServiceFailed, fmt.Sprintf("%s (restarting in %s)", why, delay))
		s.report(ctx)
		switch s.pause(ctx, delay) {
		case stopped:
			return
		case retired:
			s.remove()
			return
		}
	}
}

// pause waits d, or less if the record changes in a way that needs a new
// start: it returns exited when it is time to start again, retired or
// stopped.
func (s *server) pause(ctx context.Context, d time.Duration) outcome {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return exited
		case v := <-s.update:
			change := s.classify(v)
			s.svc = v
			if change != noChange {
				return exited // the new settings may fix it: try them now
			}
		case <-s.retire:
			return retired
		case <-ctx.Done():
			return stopped
		}
	}
}

func (s *server) setState(state skiff.ServiceState, errText string) {
	if s.stat.State != state {
		s.stat.Since = time.Now().UTC()
	}
	s.stat.State, s.stat.Error = state, errText
}

// report writes the service's status, unless it is the one last
// written. A failure is logged: the next report writes the whole status
// again.
func (s *server) report(ctx context.Context) {
	if s.reported != nil && *s.reported == s.stat {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.h.st.ServiceStat.Put(ctx, s.name, s.stat); err != nil {
		s.reported = nil
		if ctx.Err() == nil {
			s.log.Warn("report service status", "err", err)
		}
		return
	}
	st := s.stat
	s.reported = &st
}

// start prepares the volume and starts the server. A *waitError means
// it cannot start yet for a reason that passes by itself.
func (s *server) start(ctx context.Context) (*process, error) {
	svc := s.svc
	s.stat.Generation = svc.Generation
	if s.stat.State != skiff.ServiceStarting {
		s.setState(skiff.ServiceStarting, "")
	} // else waiting (see waitError): it says what for until it is over
	eng, err := engineFor(svc.Kind)
	if err != nil {
		return nil, err
	}
	s.eng = eng
	if err := s.volume(svc.Kind); err != nil {
		return nil, err
	}
	s.stat.Addr = net.JoinHostPort(s.h.cfg.Addr, strconv.Itoa(s.port))
	s.stat.Role = ""
	s.report(ctx)

	s.stopLeftover(eng)
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	logf, err := s.openLog()
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the server has its own copy
	fmt.Fprintf(logf, "--- %s: skiff prepares %s (generation %d)\n", time.Now().UTC().Format(time.RFC3339), svc.Kind, svc.Generation)
	args, err := eng.prepare(ctx, s, pw, logf)
	if err != nil {
		return nil, err
	}
	s.stat.Error = "" // no longer waiting; reported with the next state
	pruneLogs(filepath.Join(s.dir, "log"), keepLogs)
	fmt.Fprintf(logf, "--- %s: skiff starts %s\n", time.Now().UTC().Format(time.RFC3339), filepath.Base(args[0]))
	from, err := logf.Seek(0, io.SeekEnd) // where the server's own words start
	if err != nil {
		return nil, err
	}
	return s.spawn(args, logf, eng.stopSignal(), from)
}

// password is the service's password, unsealed.
func (s *server) password() ([]byte, error) {
	if len(s.svc.Password) == 0 {
		return nil, errors.New("the service record has no password: the addons role must set one")
	}
	pw, err := s.h.st.Unseal(s.svc.Password)
	if err != nil {
		return nil, fmt.Errorf("open the service's password: %w", err)
	}
	if len(pw) == 0 || bytes.ContainsAny(pw, "\x00\r\n") {
		return nil, errors.New("the service's password is empty or holds a line break: the addons role must set a one-line password")
	}
	return pw, nil
}

// volume makes the service's directory, private to the service user, and
// gives it its port: the one recorded there, or a new one recorded there.
func (s *server) volume(kind string) error {
	if err := os.Mkdir(s.dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make the volume %s: %w", s.dir, err)
	}
	if err := s.h.acct.Chown(s.dir); err != nil {
		return fmt.Errorf("give the volume to the service user: %w", err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	if have, err := os.ReadFile(filepath.Join(s.dir, kindFile)); err == nil {
		if k := strings.TrimSpace(string(have)); k != kind {
			return fmt.Errorf("the volume %s holds %s data, and the service is now %s: delete the service and create it again", s.dir, k, kind)
		}
	} else if err := writeFile(filepath.Join(s.dir, kindFile), []byte(kind+"\n"), 0o644, nil); err != nil {
		return fmt.Errorf("write the volume's kind: %w", err)
	}

	path := filepath.Join(s.dir, portFile)
	port, err := readPort(path)
	switch {
	case err == nil:
		if err := s.h.ports.claim(s.name, port); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		if port, err = s.h.ports.pick(s.name, s.h.cfg.Addr); err != nil {
			return err
		}
		if err := writeFile(path, []byte(strconv.Itoa(port)+"\n"), 0o644, nil); err != nil {
			return fmt.Errorf("record the service's port: %w", err)
		}
	default:
		return fmt.Errorf("read the service's port: %w (the port must not change: fix the file %s, do not delete it)", err, path)
	}
	s.port = port
	return nil
}

func readPort(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("bad port in %s: %q", path, strings.TrimSpace(string(data)))
	}
	return p, nil
}

// openLog opens the server's output file for appending, after setting
// aside one grown too large.
func (s *server) openLog() (*os.File, error) {
	path := filepath.Join(s.dir, logFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLog {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the server's log: %w", err)
	}
	return f, nil
}

// run watches a started server until it exits, its record changes in a
// way that needs a restart, is deleted, or ctx ends.
func (s *server) run(ctx context.Context, proc *process) (outcome, string) {
	s.log.Info("server started", "pid", proc.pid, "addr", s.stat.Addr, "generation", s.svc.Generation)
	pctx, cancelProbe := context.WithCancel(ctx)
	defer cancelProbe()
	probes := make(chan probeResult, 1)
	if pw, err := s.password(); err != nil {
		probes <- probeResult{err: err}
	} else {
		go s.probe(pctx, proc, pw, probes)
	}

	var stable <-chan time.Time
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	for {
		select {
		case r := <-probes:
			if r.err != nil {
				s.setState(skiff.ServiceFailed, r.err.Error())
				s.report(ctx)
				s.log.Warn("server does not answer as it should", "err", r.err)
				continue
			}
			s.stat.Role = r.role
			s.setState(skiff.ServiceUp, "")
			s.report(ctx)
			s.log.Info("server up", "addr", s.stat.Addr, "role", r.role)
			stable = time.After(stableAfter)
		case <-stable:
			s.fails = 0
		case <-prune.C:
			pruneLogs(filepath.Join(s.dir, "log"), keepLogs)
		case <-proc.done:
			return exited, proc.exitReason() + s.lastOutput(proc)
		case v := <-s.update:
			switch s.classify(v) {
			case noChange:
				s.svc = v
				continue
			case promote:
				if p, ok := s.eng.(promoter); ok && s.stat.State == skiff.ServiceUp {
					pw, err := s.password()
					var role string
					if err == nil {
						role, err = p.promote(ctx, s, pw)
					}
					if err == nil {
						s.svc = v
						s.stat.Role = role
						s.report(ctx)
						s.log.Info("replica promoted", "role", role)
						continue
					}
					s.log.Warn("promote the replica in place: restarting it as a primary instead", "err", err)
				}
			}
			s.log.Info("service changed: restarting the server", "generation", v.Generation)
			s.stop(proc)
			s.svc = v
			return reconfigured, ""
		case <-s.retire:
			s.stop(proc)
			return retired, ""
		case <-ctx.Done():
			s.stop(proc)
			return stopped, ""
		}
	}
}

type probeResult struct {
	role string
	err  error
}

// probe asks the server whether it answers, every probeInterval until it
// does, and sends the answer. Failures are sent too, each once, when they
// mean it will not answer by waiting (a refused password) or once it has
// had StartTimeout to answer.
//
// It runs beside the supervisor: it reads nothing of s that the
// supervisor changes while the server runs (the record, the status).
func (s *server) probe(ctx context.Context, proc *process, pw []byte, out chan<- probeResult) {
	deadline := time.Now().Add(s.h.cfg.StartTimeout)
	last := ""
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		role, err := s.eng.ready(ctx, s, pw)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			select {
			case out <- probeResult{role: role}:
			case <-ctx.Done():
			}
			return
		}
		if isRefused(err) || time.Now().After(deadline) {
			if !isRefused(err) {
				err = fmt.Errorf("the server runs but has not answered within %s: %w", s.h.cfg.StartTimeout, err)
			}
			if msg := err.Error(); msg != last {
				last = msg
				select {
				case out <- probeResult{err: err}:
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-proc.done:
			return
		case <-t.C:
		}
	}
}

// stopLeftover stops a server that an earlier life of the host left
// running on the volume, so that two never run on the same data.
func (s *server) stopLeftover(eng engine) {
	pid := readPidFile(eng.pidFile(s.dir))
	if pid <= 0 || !serverAlive(pid, eng.command(), s.h.acct.UID) {
		return
	}
	s.log.Warn("stopping a server left running by an earlier run of the service host", "pid", pid)
	stopPid(pid, eng.stopSignal(), s.h.cfg.StopTimeout, func() bool { return serverAlive(pid, eng.command(), s.h.acct.UID) })
}

// remove stops whatever runs on the volume, deletes the service's status
// and removes its volume.
func (s *server) remove() {
	if s.gone {
		if data, err := os.ReadFile(filepath.Join(s.dir, kindFile)); err == nil {
			s.eng, _ = engineFor(strings.TrimSpace(string(data)))
		}
	}
	for _, eng := range []engine{s.eng, postgres{}, redisEngine{}} {
		if eng != nil {
			s.stopLeftover(eng)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, rev, err := s.h.st.ServiceStat.Get(ctx, s.name); err == nil && st.Node == s.h.cfg.Node {
		if err := s.h.st.ServiceStat.DeleteAt(ctx, s.name, rev); err != nil && !errors.Is(err, skiff.ErrConflict) {
			s.log.Warn("delete service status", "err", err)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Error("remove the service's volume", "dir", s.dir, "err", err)
	}
	s.h.ports.release(s.name)
	s.log.Info("service removed")
}

// change is what a new record asks of a running server.
type change int

const (
	noChange change = iota
	promote         // a Redis replica becomes a primary, in place
	restart
)

// settings are the fields of a service whose change restarts its server.
type settings struct {
	Kind          string
	MaxMemory     int64
	Eviction      string
	NoPersistence bool
	ReplicaOf     string
	Generation    int
}

func settingsOf(v skiff.Service) settings {
	return settings{Kind: v.Kind, MaxMemory: v.MaxMemory, Eviction: v.Eviction, NoPersistence: v.NoPersistence,
		ReplicaOf: v.ReplicaOf, Generation: v.Generation}
}

// classify says what a server running with old must do to take new.
// samePassword says whether both hold the same password (they are sealed
// apart, so their bytes may differ).
func classify(old, new skiff.Service, samePassword bool) change {
	o, n := settingsOf(old), settingsOf(new)
	if !samePassword {
		return restart
	}
	if o == n {
		return noChange
	}
	if o.Kind == skiff.AddonRedis && o.ReplicaOf != "" && n.ReplicaOf == "" {
		o.ReplicaOf = ""
		if o == n {
			return promote
		}
	}
	return restart
}

func (s *server) classify(v skiff.Service) change {
	same := bytes.Equal(s.svc.Password, v.Password)
	if !same {
		a, err1 := s.h.st.Unseal(s.svc.Password)
		b, err2 := s.h.st.Unseal(v.Password)
		same = err1 == nil && err2 == nil && bytes.Equal(a, b)
	}
	return classify(s.svc, v, same)
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitError says a server cannot start yet, for a reason that passes by
// itself: it is tried again soon, and that is not a failure.
type waitError struct{ msg string }

func (e *waitError) Error() string { return e.msg }

// refusedError says a server answers but refuses the service's password:
// waiting will not make it answer.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func refused(format string, args ...any) error { return &refusedError{fmt.Sprintf(format, args...)} }

func isRefused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}
