// Package schedule reads the cron schedules of app.json: the five fields
// and the @ shortcuts, in UTC, and when a schedule is next due. Builds
// check a release's jobs with it, the API shows their next runs, and the
// cron runner of the scheduler role starts them.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// MaxJobs bounds how many cron entries one release may have.
const MaxJobs = 100

// maxCommand bounds a job's command, as it bounds any one-off's.
const maxCommand = 4096

// parser reads the standard five fields and the @ shortcuts; the seconds
// field and time zones are refused before it sees them.
var parser = robfig.NewParser(robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

const scheduleHint = `write five fields, minute hour day-of-month month day-of-week, such as "*/10 * * * *" or "30 2 * * 1-5", ` +
	`or one of @hourly, @daily, @weekly, @monthly, @yearly; times are UTC`

// Schedule is a parsed cron schedule, evaluated in UTC.
type Schedule struct {
	spec robfig.Schedule
}

// Parse reads a five-field cron expression (minute hour day-of-month
// month day-of-week, with *, lists, ranges, steps and names of months and
// days) or one of the shortcuts @hourly, @daily, @midnight, @weekly,
// @monthly, @yearly and @annually. The error says what to write instead.
func Parse(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	bad := func(hint, format string, a ...any) (Schedule, error) {
		return Schedule{}, skiff.Errorf(skiff.KindInvalid, hint, format, a...)
	}
	switch {
	case spec == "":
		return bad(scheduleHint, "no schedule")
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return bad("remove the time zone and write the times in UTC", "schedule %q names a time zone: schedules are in UTC", spec)
	case strings.HasPrefix(spec, "@every"):
		if d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(spec, "@every"))); err == nil && d < time.Minute {
			return bad(`the most frequent schedule is "* * * * *", every minute`, "schedule %q runs more often than once a minute", spec)
		}
		return bad(`write it as fields: "*/15 * * * *" is every 15 minutes, "0 */2 * * *" every 2 hours`,
			"schedule %q: @every is not a cron schedule", spec)
	case strings.HasPrefix(spec, "@"):
		spec = strings.ToLower(spec)
	case len(strings.Fields(spec)) == 6:
		return bad(`remove the seconds field: the most frequent schedule is "* * * * *", every minute`,
			"schedule %q has six fields: jobs run at most once a minute", spec)
	}
	s, err := parser.Parse("CRON_TZ=UTC " + spec)
	if err != nil {
		hint := scheduleHint
		if strings.Contains(err.Error(), "above maximum (6)") {
			hint = "days of the week are 0 to 6 (Sunday is 0) or SUN to SAT"
		}
		return bad(hint, "schedule %q: %v", spec, err)
	}
	if s.Next(time.Now()).IsZero() {
		return bad("check the day of the month against the month", "schedule %q never comes", spec)
	}
	return Schedule{spec: s}, nil
}

// Next is the first time after t that the schedule names.
func (s Schedule) Next(t time.Time) time.Time { return s.spec.Next(t.UTC()) }

// Due is the latest time at or before now that the schedule names, if it
// began no more than window ago; zero otherwise. A slot missed for longer
// than window is not due: it is skipped, not run late.
func (s Schedule) Due(now time.Time, window time.Duration) time.Time {
	var due time.Time
	for t := s.Next(now.Add(-window - time.Nanosecond)); !t.IsZero() && !t.After(now); t = s.Next(t) {
		due = t
	}
	return due
}

// CheckJobs checks app.json's cron entries and returns them cleaned up
// (spaces trimmed, shortcuts in lower case). The error names the first
// entry that cannot run, counting from 1, and says what to fix.
func CheckJobs(jobs []skiff.CronJob) ([]skiff.CronJob, error) {
	if len(jobs) > MaxJobs {
		return nil, skiff.Errorf(skiff.KindInvalid, fmt.Sprintf("keep at most %d, or run several commands in one", MaxJobs),
			"%d entries are too many", len(jobs))
	}
	var out []skiff.CronJob
	seen := map[string]int{}
	for i, j := range jobs {
		n := i + 1
		entry := func(err *skiff.Error) error {
			return &skiff.Error{Kind: skiff.KindInvalid, Message: fmt.Sprintf("entry %d: %s", n, err.Message), Hint: err.Hint}
		}
		j.Command = strings.TrimSpace(j.Command)
		switch {
		case j.Command == "":
			return nil, entry(skiff.Errorf(skiff.KindInvalid, `give the command to run, like {"command": "python manage.py clearsessions", "schedule": "0 3 * * *"}`,
				"no command"))
		case len(j.Command) > maxCommand || strings.ContainsRune(j.Command, 0):
			return nil, entry(skiff.Errorf(skiff.KindInvalid, "put a long command in a script of the app and run that",
				"the command is too long or has a NUL byte"))
		}
		if _, err := Parse(j.Schedule); err != nil {
			var e *skiff.Error
			if !errors.As(err, &e) {
				e = &skiff.Error{Message: err.Error()}
			}
			return nil, entry(e)
		}
		j.Schedule = strings.TrimSpace(j.Schedule)
		if strings.HasPrefix(j.Schedule, "@") {
			j.Schedule = strings.ToLower(j.Schedule)
		}
		if prev, dup := seen[j.ID()]; dup {
			return nil, entry(skiff.Errorf(skiff.KindInvalid, "remove one of them", "the same command and schedule as entry %d", prev))
		}
		seen[j.ID()] = n
		out = append(out, j)
	}
	return out, nil
}
