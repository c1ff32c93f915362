package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

func backupsCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backups",
		Short: "List, take, download, restore and verify backups of an app's add-ons",
		Long: `List the backups of an app's add-ons, newest first: manual ones (skiff backups
capture), scheduled ones (skiff backups schedule), and those taken before a
destroy or a restore. docs/backups.md says how long they are kept and how
to keep copies elsewhere (skiff backups pull).`,
		Example: "  skiff backups -a shop\n  skiff backups capture -a shop",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			list, err := c.Backups(cmd.Context(), name)
			if err != nil {
				return err
			}
			_, err = show(e, list, name+" has no backups. Take one: skiff backups capture -a "+name,
				[]string{"ID", "ADD-ON", "KIND", "STATE", "SIZE", "CREATED", "VERIFIED"},
				func(b skiff.Backup) []string {
					size := "-"
					if b.State == skiff.BackupDone {
						size = skiff.HumanBytes(b.Size)
					}
					return []string{b.ID, b.Addon, b.Kind, string(b.State), size, b.StartedAt.Local().Format("2006-01-02 15:04"), verified(b)}
				})
			return err
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.AddCommand(backupsCaptureCommand(e), backupsInfoCommand(e), backupsDownloadCommand(e), backupsRestoreCommand(e),
		backupsVerifyCommand(e), backupsScheduleCommand(e), backupsUnscheduleCommand(e), backupsTokenCommand(e), backupsPullCommand(e),
		backupsUploadCommand(e))
	return cmd
}

func backupsUploadCommand(e *env) *cobra.Command {
	var addon string
	cmd := &cobra.Command{
		Use:   "upload FILE -a APP [--addon NAME]",
		Short: "Store a backup file made elsewhere, to verify and restore it",
		Long: `Store a backup file as a backup of one of the app's add-ons (its only one
unless --addon names another): a file of skiff backups download or pull,
from this installation or another, or a dump of your own (pg_dump -Fc for
PostgreSQL, an RDB file for Redis). The file must be of the add-on's
type. Its SHA-256 is checked on arrival. Then verify it (which also counts
what it holds) and restore it:

  skiff backups verify ID -a APP
  skiff backups restore ID -a APP --confirm APP`,
		Example: `  skiff backups upload /srv/skiff-backups/shop/a012.dump -a shop`,
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			f, err := os.Open(a[0])
			if err != nil {
				return err
			}
			defer f.Close()
			sum := sha256.New()
			if _, err := io.Copy(sum, f); err != nil {
				return fmt.Errorf("read %s: %w", a[0], err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			info, err := f.Stat()
			if err != nil {
				return err
			}
			p := e.progress("Uploading "+filepath.Base(a[0]), info.Size())
			b, err := c.UploadBackup(cmd.Context(), name, addon, p.reader(f), hex.EncodeToString(sum.Sum(nil)))
			p.done()
			if err != nil {
				return err
			}
			if e.g.json {
				return e.printJSON(b)
			}
			fmt.Fprintf(e.stdout, "Uploaded %s as backup %s of %s (%s).\nVerify it: skiff backups verify %s -a %s\n",
				a[0], b.ID, b.Addon, skiff.HumanBytes(b.Size), b.ID, name)
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	cmd.Flags().StringVar(&addon, "addon", "", "the add-on the backup is of (default: the app's only one)")
	return cmd
}

func backupsCaptureCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "capture -a APP [ADDON]",
		Short:   "Take a backup of an add-on now",
		Long:    "Take a backup of an add-on (the app's only one unless ADDON names another), kept as a manual backup.",
		Example: "  skiff backups capture -a shop\n  skiff backups capture -a shop redis-1",
		Args:    args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			doing := "Backing up " + name
			if len(a) == 1 {
				doing = "Backing up " + a[0] + " of " + name
			}
			res, err := e.job(doing, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.CaptureBackup(cmd.Context(), name, first(a), onLine)
			})
			if err != nil {
				return err
			}
			if b := res.Backup; b != nil {
				fmt.Fprintf(e.stdout, "Backup %s of %s done: %s.\n", b.ID, b.Addon, skiff.HumanBytes(b.Size))
				if isTerminal(e.stdout) {
					fmt.Fprintf(e.stdout, "Download it: skiff backups download %s -a %s\n", b.ID, name)
				}
			}
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}

func backupsInfoCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "info ID -a APP",
		Short:   "Describe a backup: its size, checksum, contents and verification",
		Example: "  skiff backups info b004 -a shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, _, b, err := e.appBackup(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			rows := [][]string{
				{"Add-on:", b.Addon + " (" + b.Type + ")"},
				{"Kind:", b.Kind},
				{"State:", withError(string(b.State), b.Error)},
				{"Format:", orNone(b.Format)},
				{"Size:", skiff.HumanBytes(b.Size)},
				{"SHA-256:", orNone(b.SHA256)},
				{"Started:", b.StartedAt.Local().Format(time.DateTime)},
			}
			if !b.FinishedAt.IsZero() {
				rows = append(rows, []string{"Finished:", b.FinishedAt.Local().Format(time.DateTime) + " (" + b.FinishedAt.Sub(b.StartedAt).Round(time.Second).String() + ")"})
			}
			v := "not yet (skiff backups verify " + b.ID + " -a " + name + ")"
			if b.Verified != "" {
				v = b.Verified + ", " + b.VerifiedAt.Local().Format(time.DateTime)
				if b.VerifyNote != "" {
					v += ": " + b.VerifyNote
				}
			}
			rows = append(rows, []string{"Verified:", v})
			if shown, err := e.describe(b, b.ID+" of "+name, rows); !shown || err != nil {
				return err
			}
			if len(b.Contents) > 0 {
				fmt.Fprintln(e.stdout, "\n=== Contents")
				rows = nil
				for _, k := range sortedKeys(b.Contents) {
					rows = append(rows, []string{k + ":", fmt.Sprint(b.Contents[k])})
				}
				return e.table(rows)
			}
			return nil
		},
	}
	e.appFlag(cmd)
	e.jsonFlag(cmd)
	return cmd
}

func backupsDownloadCommand(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "download ID -a APP [-o FILE]",
		Short: "Download a backup's file, checking its SHA-256",
		Long: `Download a backup's file to FILE (default APP-ID.dump for PostgreSQL, a
pg_dump archive that pg_restore reads; APP-ID.rdb for Redis). The file is
written aside and renamed once whole and matching the SHA-256 taken with
the backup; a download that fails leaves nothing behind.`,
		Example: `  skiff backups download b004 -a shop
  pg_restore --no-owner -d mydb shop-b004.dump`,
		Args: args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, b, err := e.appBackup(cmd.Context(), a[0])
			if err != nil {
				return err
			}
			if output == "" {
				output = name + "-" + b.ID + skiff.BackupExt(b)
			}
			d, err := c.DownloadBackup(cmd.Context(), name, b.ID)
			if err != nil {
				return err
			}
			defer d.Close()
			if err := e.save(output, "Downloading "+b.ID, d); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Downloaded %s of %s (%s, SHA-256 checked) to %s\n", b.ID, name, skiff.HumanBytes(b.Size), output)
			return nil
		},
	}
	e.appFlag(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "the file to write (default: APP-ID.dump or APP-ID.rdb)")
	return cmd
}

func backupsRestoreCommand(e *env) *cobra.Command {
	var req skiff.BackupRestoreRequest
	cmd := &cobra.Command{
		Use:   "restore [ID|latest] -a APP --confirm APP",
		Short: "Replace an add-on's data with a backup's",
		Long: `Restore a backup (the newest done one by default) into an add-on of the app
(its only one unless --addon names another), replacing what it holds. A
backup of the add-on is taken first, kept as before-restore. With
--from-app, the backup is another app's (of an add-on of the same type):
how a staging database gets production's data. This cannot be undone
except by restoring that backup, so the app's name must be given with
--confirm.`,
		Example: `  skiff backups restore -a shop --confirm shop
  skiff backups restore b004 -a shop --addon postgres-1 --confirm shop
  skiff backups restore latest -a shop-staging --from-app shop --confirm shop-staging`,
		Args: args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			id := first(a)
			if id == "" {
				id = "latest"
			}
			name, c, err := e.confirmedAppClient(req.Confirm, "skiff backups restore "+id, func(name string) string {
				return fmt.Sprintf("restoring %s replaces the data of an add-on of %s (a backup of it is taken first)", id, name)
			})
			if err != nil {
				return err
			}
			res, err := e.job("Restoring "+id+" into "+name, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.RestoreBackup(cmd.Context(), name, id, req, onLine)
			})
			if err != nil {
				return err
			}
			what, into := id, req.Addon
			if b := res.Backup; b != nil {
				what = b.App + "/" + b.ID
			}
			if res.Addon != nil {
				into = res.Addon.Name
			}
			if into != "" {
				into += " of "
			}
			fmt.Fprintf(e.stdout, "Restored %s into %s%s.\n", what, into, name)
			return nil
		},
	}
	e.appFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&req.Addon, "addon", "", "the add-on to restore into (default: the app's only one)")
	f.StringVar(&req.FromApp, "from-app", "", "restore another app's backup")
	f.StringVar(&req.Confirm, "confirm", "", "the app's name, to confirm")
	return cmd
}

func backupsVerifyCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify ID -a APP",
		Short: "Restore a backup into a scratch server and check what it holds",
		Long: `Restore a backup into a scratch server of its own and compare what it holds
(rows per table, keys per database) with what was counted when it was
taken. The app's add-on is not touched. Exits 1 if the backup fails the
check.`,
		Example: "  skiff backups verify b004 -a shop",
		Args:    args(1, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			name, c, err := e.appClient()
			if err != nil {
				return err
			}
			res, err := e.job("Verifying "+a[0]+" of "+name, func(onLine func(string)) (skiff.StreamMessage, error) {
				return c.VerifyBackup(cmd.Context(), name, a[0], onLine)
			})
			if err != nil {
				return err
			}
			b := res.Backup
			if b == nil {
				fmt.Fprintf(e.stdout, "Verified %s.\n", a[0])
				return nil
			}
			note := ""
			if b.VerifyNote != "" {
				note = ": " + b.VerifyNote
			}
			if b.Verified == skiff.BackupVerifyError {
				return skiff.Errorf(skiff.KindFailed, "take a new backup: skiff backups capture -a "+name,
					"backup %s failed verification%s", b.ID, note)
			}
			fmt.Fprintf(e.stdout, "Backup %s verified%s.\n", b.ID, note)
			return nil
		},
	}
	e.appFlag(cmd)
	return cmd
}

func backupsScheduleCommand(e *env) *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "schedule -a APP [ADDON] --at HH:MM",
		Short: "Back an add-on up every day at a time (UTC)",
		Long: `Take a backup of an add-on (the app's only one unless ADDON names another)
every day at a time in UTC. Scheduled backups are kept 7 days, then one a
week for 4 weeks, then one a month for 12 months.`,
		Example: "  skiff backups schedule -a shop --at 02:00",
		Args:    args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			if at == "" {
				return usageError(cmd, "schedule needs the time of day: --at HH:MM (UTC)")
			}
			return e.schedule(cmd.Context(), first(a), at)
		},
	}
	e.appFlag(cmd)
	cmd.Flags().StringVar(&at, "at", "", "the time of day, HH:MM in UTC")
	return cmd
}

func backupsUnscheduleCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "unschedule -a APP [ADDON]",
		Short:   "Stop an add-on's daily backups (the backups taken stay)",
		Example: "  skiff backups unschedule -a shop",
		Args:    args(0, 1),
		RunE: func(cmd *cobra.Command, a []string) error {
			return e.schedule(cmd.Context(), first(a), "")
		},
	}
	e.appFlag(cmd)
	return cmd
}

func (e *env) schedule(ctx context.Context, addon, at string) error {
	name, c, ad, err := e.appAddon(ctx, addon, "")
	if err != nil {
		return err
	}
	v, err := c.SetBackupSchedule(ctx, name, ad.Name, at)
	if err != nil {
		return err
	}
	if v.BackupAt == "" {
		fmt.Fprintf(e.stdout, "%s of %s has no scheduled backups.\n", v.Name, name)
	} else {
		fmt.Fprintf(e.stdout, "%s of %s is backed up daily at %s UTC.\n", v.Name, name, v.BackupAt)
	}
	return nil
}

func backupsTokenCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Make a read-only token for pulling every app's backups (admins)",
		Long: `Make an API token that may only list and download every app's backups: give it
to the machine that keeps copies of them, which runs skiff backups pull.
The token is printed once, on the standard output.`,
		Example: "  skiff backups token",
		Args:    args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), skiff.ScopeBackupsRead)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, t.Token)
			fmt.Fprintf(e.stderr, "This token may only pull backups; keep it secret. On the machine that keeps the copies:\n"+
				"  skiff backups pull --api %s --token TOKEN --to /srv/skiff-backups\n", c.BaseURL())
			return nil
		},
	}
}

func backupsPullCommand(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "pull --to DIR",
		Short: "Copy every app's new backups into a directory (for cron)",
		Long: `Download every done backup of every app that DIR does not have yet to
DIR/APP/ID.dump (or .rdb), each checked against its SHA-256 and renamed
into place once whole, and record it in DIR/.skiff-pull.json. A second run
fetches only what is new, and prints nothing when there is nothing new:
run it from cron on another machine, with a token of skiff backups token.
A file deleted from DIR is fetched again while the platform keeps it.`,
		Example: `  skiff backups pull --to /srv/skiff-backups
  skiff backups pull --api https://skiff.example.com:7070 --token "$(cat /etc/skiff-pull.token)" --to /srv/skiff-backups`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError(cmd, "pull needs the directory to keep the backups in: --to DIR")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.pull(cmd.Context(), c, dir)
		},
	}
	cmd.Flags().StringVar(&dir, "to", "", "the directory to keep the backups in")
	return cmd
}

// pullStateFile, in a pull's directory, records what it holds.
const pullStateFile = ".skiff-pull.json"

// pullState is what a directory of pulled backups holds, by APP/ID.
type pullState struct {
	Backups map[string]pulledBackup `json:"backups"`
}

// pulledBackup is one backup fetched.
type pulledBackup struct {
	File     string    `json:"file"` // relative to the directory
	Addon    string    `json:"addon"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	PulledAt time.Time `json:"pulled_at"`
}

var backupIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// pull fetches into dir every done backup it does not have.
func (e *env) pull(ctx context.Context, c *client.Client, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot make " + dir, Hint: "name a directory you may write to", Err: err}
	}
	// Two runs at once (a slow one and cron's next) would fetch the
	// same files and race on the state file.
	lock, err := os.OpenFile(filepath.Join(dir, ".skiff-pull.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot write in " + dir, Hint: "name a directory you may write to", Err: err}
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return skiff.Errorf(skiff.KindConflict, "wait for it to finish", "another skiff backups pull is running in %s", dir)
	}
	state, err := loadPullState(dir)
	if err != nil {
		return err
	}
	list, err := c.AllBackups(ctx, time.Time{})
	if err != nil {
		return err
	}
	// Oldest first: a run cut short has the older ones.
	sort.SliceStable(list, func(i, j int) bool { return list[i].StartedAt.Before(list[j].StartedAt) })
	var fetched, failed int
	var firstErr error
	for _, b := range list {
		if b.State != skiff.BackupDone || skiff.ValidateAppName(b.App) != nil || !backupIDRE.MatchString(b.ID) {
			continue
		}
		key := b.App + "/" + b.ID
		if have, ok := state.Backups[key]; ok {
			if st, err := os.Stat(filepath.Join(dir, have.File)); err == nil && st.Size() == have.Size {
				continue
			}
		}
		file := filepath.Join(b.App, b.ID+skiff.BackupExt(b))
		if err := e.pullOne(ctx, c, b, filepath.Join(dir, file)); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			fmt.Fprintf(e.stderr, "error: %s: %v\n", key, err)
			continue
		}
		state.Backups[key] = pulledBackup{File: file, Addon: b.Addon, Size: b.Size, SHA256: b.SHA256, PulledAt: time.Now().UTC()}
		if err := savePullState(dir, state); err != nil {
			return err
		}
		fetched++
		fmt.Fprintf(e.stdout, "Fetched %s (%s, %s) to %s\n", key, b.Addon, skiff.HumanBytes(b.Size), filepath.Join(dir, file))
	}
	if failed > 0 {
		return &skiff.Error{Kind: skiff.KindFailed, Message: fmt.Sprintf("%d of %d new backups could not be fetched", failed, failed+fetched),
			Hint: "run it again: what was fetched is kept", Err: firstErr}
	}
	if fetched == 0 && isTerminal(e.stdout) {
		fmt.Fprintf(e.stdout, "Nothing new: %s has all %d backups.\n", dir, len(state.Backups))
	}
	return nil
}

// pullOne downloads one backup to path, through path.partial.
func (e *env) pullOne(ctx context.Context, c *client.Client, b skiff.Backup, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	d, err := c.PullBackup(ctx, b.App, b.ID)
	if err != nil {
		return err
	}
	defer d.Close()
	if b.SHA256 != "" && d.SHA256 != b.SHA256 {
		return skiff.Errorf(skiff.KindFailed, "pull again", "the file's checksum changed since it was listed")
	}
	return e.save(path, "Fetching "+b.App+"/"+b.ID, d)
}

// appBackup is appClient and the app's backup id.
func (e *env) appBackup(ctx context.Context, id string) (string, *client.Client, skiff.Backup, error) {
	name, c, err := e.appClient()
	if err != nil {
		return "", nil, skiff.Backup{}, err
	}
	b, err := c.Backup(ctx, name, id)
	return name, c, b, err
}

func loadPullState(dir string) (pullState, error) {
	state := pullState{Backups: map[string]pulledBackup{}}
	p := filepath.Join(dir, pullStateFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return state, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &state)
	}
	if err != nil {
		return state, &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot read " + p,
			Hint: "delete it: the next pull fetches every backup again", Err: err}
	}
	if state.Backups == nil {
		state.Backups = map[string]pulledBackup{}
	}
	return state, nil
}

func savePullState(dir string, state pullState) error {
	data, _ := json.MarshalIndent(state, "", "  ")
	return writeAside(filepath.Join(dir, pullStateFile), strings.NewReader(string(data)+"\n"))
}

// writeAside writes what r gives to path.partial (mode 0600), then
// renames it to path: path is whole or untouched. A read error leaves
// nothing behind.
func writeAside(path string, r io.Reader) error {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return &skiff.Error{Kind: skiff.KindInvalid, Message: "cannot write " + path, Hint: "name a file in a directory you may write to", Err: err}
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// save writes a download to path as writeAside does, showing its
// progress (what is being done) only when the output goes to a person.
func (e *env) save(path, what string, d *client.BackupDownload) error {
	p := &progress{}
	if isTerminal(e.stdout) {
		p = e.progress(what, d.Size)
	}
	err := writeAside(path, p.reader(d))
	p.done()
	return err
}

// verified says whether and how a backup was verified.
func verified(b skiff.Backup) string {
	if b.Verified == "" {
		return "-"
	}
	return b.Verified + " " + ago(b.VerifiedAt)
}
