package skiff

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// CronJob is one scheduled job of a release, from app.json's cron: a
// command run as a detached one-off process at each time its schedule
// names, in UTC.
type CronJob struct {
	// Schedule is a five-field cron expression (minute hour day-of-month
	// month day-of-week) or a shortcut such as @daily, as written in
	// app.json; the builder has checked it.
	Schedule string `json:"schedule"`
	Command  string `json:"command"`
}

// ID names the job by what it does, not by where it stands in app.json:
// a deploy that reorders the entries, or keeps one as it was, does not
// make it run twice in one slot.
func (j CronJob) ID() string {
	h := sha256.Sum256([]byte(j.Schedule + "\x00" + j.Command))
	return hex.EncodeToString(h[:6])
}

// CronRun is one run of a scheduled job. The runner claims a slot by
// creating one at CronClaimKey (and fails to, if it ran already), and
// records the job's latest run at CronLastKey.
type CronRun struct {
	App string `json:"app"`
	// Job is the job's ID; Index its place in the release's list, from 1.
	Job      string `json:"job"`
	Index    int    `json:"index"`
	Command  string `json:"command"`
	Schedule string `json:"schedule"`
	// Slot is the time the schedule named; Claimed when the runner took it.
	Slot    time.Time `json:"slot"`
	Claimed time.Time `json:"claimed"`
	// Release is the release whose schedule it was.
	Release int `json:"release"`
	// Runner is the node whose cron runner claimed it, Fencing the
	// revision of the cron lease it held then.
	Runner  string `json:"runner"`
	Fencing uint64 `json:"fencing"`
	// Name and Node are the one-off process started (run.1234) and where
	// it runs; Error says why none was.
	Name  string `json:"name,omitempty"`
	Node  string `json:"node,omitempty"`
	Error string `json:"error,omitempty"`
}

// CronClaimKey is the key in the cron bucket that claims slot (a Unix
// time) of app's job.
func CronClaimKey(app, job string, slot int64) string { return fmt.Sprintf("%s.%s.%d", app, job, slot) }

// CronLastKey is the key in the cron bucket of the latest run of app's
// job.
func CronLastKey(app, job string) string { return app + "." + job + ".last" }

// CronJobView answers GET /v1/apps/{app}/cron: one job of the app's
// current release.
type CronJobView struct {
	Index    int    `json:"index"` // from 1, in app.json's order
	ID       string `json:"id"`
	Schedule string `json:"schedule"`
	Command  string `json:"command"`
	// NextRun is the next time the schedule names, in UTC.
	NextRun time.Time `json:"next_run"`
	// LastRun is the job's latest run, if any is remembered.
	LastRun *CronRun `json:"last_run,omitempty"`
}

// Events of scheduled jobs.
const (
	EventCronStarted = "cron.started"
	EventCronFailed  = "cron.failed"
)
