package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/oneoff"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func runCommand(e *env) *cobra.Command {
	var detach, forceTTY, noTTY bool
	var size string
	var vars []string
	cmd := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARG...]",
		Short: "Run a one-off process in an app's environment",
		Long: `Run a one-off process in the app's current release: the same image, config and
isolation as its processes, with its input and output here. When this
terminal is the input, the process gets a terminal of its own (raw mode,
window size, Ctrl-C reaching it); otherwise its input and output are plain
pipes, so that it works in scripts. The exit status is the process's.
Hanging up (closing the terminal, killing skiff) stops the process.

One argument is run as a shell command line as it is ('echo $HOME'); several
are quoted word by word. With --detach the process runs in the background,
its output in the app's logs, until it ends.`,
		Example: `  skiff run -a shop -- bash
  skiff run -a shop -- python manage.py migrate < answers.txt
  skiff run -a shop --detach -- python manage.py rebuild_index`,
		Args: args(1, -1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			req := skiff.RunRequest{Command: commandLine(a), Env: map[string]string{}, Size: size}
			for _, v := range vars {
				k, val, ok := strings.Cut(v, "=")
				if !ok {
					return usageError(cmd, "--env takes KEY=VALUE, not %q", v)
				}
				req.Env[k] = val
			}
			ctx := cmd.Context()
			if detach {
				st, err := c.RunDetached(ctx, name, req)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Running `%s` on %s... up, %s (detached)\n", req.Command, name, st.Name)
				fmt.Fprintf(e.stdout, "See its output with: skiff logs -a %s -p %s -f\n", name, st.Name)
				return nil
			}
			in, _ := e.stdin.(*os.File)
			req.TTY = in != nil && term.IsTerminal(int(in.Fd()))
			if forceTTY || noTTY {
				req.TTY = forceTTY
			}
			if req.TTY {
				req.Cols, req.Rows = terminalSize(in)
				if _, ok := req.Env["TERM"]; !ok {
					req.Env["TERM"] = os.Getenv("TERM")
					if req.Env["TERM"] == "" {
						req.Env["TERM"] = "xterm-256color"
					}
				}
			}
			s, err := c.Run(ctx, name, req)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "Running `%s` on %s... up, %s\n", req.Command, name, s.Started.Name)
			return attach(e, s, in, req.TTY)
		},
	}
	e.appFlag(cmd)
	f := cmd.Flags()
	f.BoolVarP(&detach, "detach", "d", false, "run in the background, the output in the app's logs")
	f.BoolVarP(&forceTTY, "tty", "t", false, "give the process a terminal even if the input is not one")
	f.BoolVarP(&noTTY, "no-tty", "T", false, "give the process pipes even if the input is a terminal")
	f.StringVarP(&size, "size", "s", "", "the process size: 1x (default), 2x, 4x or 8x")
	f.StringArrayVarP(&vars, "env", "e", nil, "KEY=VALUE added to the process's environment (repeatable)")
	cmd.MarkFlagsMutuallyExclusive("tty", "no-tty")
	return cmd
}

// safeWord is a word a shell takes as it is.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// commandLine makes one shell command line of a command's arguments: one
// argument is a command line already; several are quoted where needed.
func commandLine(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	words := make([]string, len(args))
	for i, a := range args {
		if safeWord.MatchString(a) {
			words[i] = a
		} else {
			words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(words, " ")
}

// terminalSize is the size of the terminal at f, or 80x24.
func terminalSize(f *os.File) (cols, rows int) {
	if f != nil {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			return w, h
		}
	}
	return 80, 24
}

// attach carries input to a run and its output back until it ends. With
// a terminal, the local one is put in raw mode, so that every key (Ctrl-C
// too) reaches the remote terminal, and size changes follow; without one,
// the signals skiff gets are passed on (a third Ctrl-C hangs up).
func attach(e *env, s *client.RunSession, in *os.File, tty bool) error {
	defer s.Close()
	if tty && in != nil && term.IsTerminal(int(in.Fd())) {
		fd := int(in.Fd())
		if old, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				cols, rows := terminalSize(in)
				_ = s.Send(oneoff.Resize, oneoff.Size{Cols: uint16(cols), Rows: uint16(rows)}.Encode())
			}
		}()
	} else if !tty {
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
		defer signal.Stop(sigs)
		go func() {
			interrupts := 0
			for sig := range sigs {
				_ = s.Send(oneoff.Signal, []byte(strings.TrimPrefix(unix.SignalName(sig.(syscall.Signal)), "SIG")))
				if sig == os.Interrupt {
					if interrupts++; interrupts >= 3 {
						s.Close()
					}
				}
			}
		}()
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := e.stdin.Read(buf)
			if n > 0 && s.Send(oneoff.Stdin, buf[:n]) != nil {
				return
			}
			if err != nil {
				_ = s.Send(oneoff.EOF, nil)
				return
			}
		}
	}()
	for {
		kind, p, err := s.Recv()
		if err != nil {
			return &skiff.Error{Kind: skiff.KindUnavailable, Message: "lost the connection to " + s.Started.Name,
				Hint: "it was stopped; skiff logs -a APP -p " + s.Started.Name + " shows what it printed", Err: err}
		}
		switch kind {
		case oneoff.Stdout:
			_, _ = e.stdout.Write(p)
		case oneoff.Stderr:
			_, _ = e.stderr.Write(p)
		case oneoff.Exit:
			var st oneoff.Status
			if err := json.Unmarshal(p, &st); err != nil {
				return fmt.Errorf("unreadable exit status of %s: %w", s.Started.Name, err)
			}
			if st.Error != "" {
				return &skiff.Error{Kind: skiff.KindUnavailable, Message: s.Started.Name + "'s stream broke: " + st.Error,
					Hint: "it was stopped; skiff logs -a APP -p " + s.Started.Name + " shows what it printed"}
			}
			if st.Code == 0 {
				return nil
			}
			es := &ExitStatus{Code: st.Code}
			if !strings.HasPrefix(st.Reason, "exit status") {
				es.Message = s.Started.Name + ": " + st.Reason
			}
			return es
		}
	}
}

// ExitStatus ends the CLI with Code, printing Message (when not empty) as
// it is: the exit status of a one-off process, which is the CLI's.
type ExitStatus struct {
	Code    int
	Message string
}

func (e *ExitStatus) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
