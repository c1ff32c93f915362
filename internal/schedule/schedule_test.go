package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseNext(t *testing.T) {
	from := at("2025-03-14 10:07:30") // a Friday
	for _, c := range []struct {
		spec string
		want []string // the next times after from
	}{
		{"* * * * *", []string{"2025-03-14 10:08:00", "2025-03-14 10:09:00"}},
		{"*/5 * * * *", []string{"2025-03-14 10:10:00", "2025-03-14 10:15:00"}},
		{"  0 3 * * *  ", []string{"2025-03-15 03:00:00", "2025-03-16 03:00:00"}},
		{"15,45 9-11 * * *", []string{"2025-03-14 10:15:00", "2025-03-14 10:45:00", "2025-03-14 11:15:00"}},
		{"0 0 * * MON-FRI", []string{"2025-03-17 00:00:00", "2025-03-18 00:00:00"}},
		{"30 4 1 jan,jul *", []string{"2025-07-01 04:30:00", "2026-01-01 04:30:00"}},
		{"0 12 15 * mon", []string{"2025-03-15 12:00:00", "2025-03-17 12:00:00", "2025-03-24 12:00:00"}}, // day of month or of week, as cron does
		{"0 0 29 2 *", []string{"2028-02-29 00:00:00"}},
		{"@hourly", []string{"2025-03-14 11:00:00", "2025-03-14 12:00:00"}},
		{"@daily", []string{"2025-03-15 00:00:00"}},
		{"@midnight", []string{"2025-03-15 00:00:00"}},
		{"@WEEKLY", []string{"2025-03-16 00:00:00", "2025-03-23 00:00:00"}},
		{"@monthly", []string{"2025-04-01 00:00:00"}},
		{"@yearly", []string{"2026-01-01 00:00:00"}},
		{"@annually", []string{"2026-01-01 00:00:00"}},
	} {
		t.Run(c.spec, func(t *testing.T) {
			s, err := Parse(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			// In UTC, whatever the zone of the time asked about.
			next := from.In(time.FixedZone("UTC+5", 5*3600))
			for _, w := range c.want {
				next = s.Next(next)
				if !next.Equal(at(w)) || next.Location() != time.UTC {
					t.Fatalf("next = %s, want %s UTC", next, w)
				}
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ spec, msg, hint string }{
		{"", "no schedule", "five fields"},
		{"* * * *", "expected exactly 5 fields", "five fields"},
		{"*/10 * * * * *", "six fields: jobs run at most once a minute", "remove the seconds field"},
		{"@every 30s", "runs more often than once a minute", `"* * * * *"`},
		{"@every 5m", "@every is not a cron schedule", "*/15 * * * *"},
		{"61 * * * *", "above maximum (59)", "five fields"},
		{"0 25 * * *", "above maximum (23)", "five fields"},
		{"0 0 * * 7", "above maximum (6)", "Sunday is 0"},
		{"0 0 * foo *", "foo", "five fields"},
		{"@fortnightly", "fortnightly", "five fields"},
		{"TZ=Europe/Paris 0 3 * * *", "time zone", "UTC"},
		{"CRON_TZ=UTC 0 3 * * *", "time zone", "UTC"},
		{"0 0 30 2 *", "never comes", "day of the month"},
	} {
		t.Run(c.spec, func(t *testing.T) {
			_, err := Parse(c.spec)
			var e *skiff.Error
			if !errors.As(err, &e) || e.Kind != skiff.KindInvalid || !strings.Contains(e.Message, c.msg) || !strings.Contains(e.Hint, c.hint) {
				t.Fatalf("Parse(%q) = %v; want an invalid error with %q and a hint with %q", c.spec, err, c.msg, c.hint)
			}
		})
	}
}

func TestDue(t *testing.T) {
	every5, _ := Parse("*/5 * * * *")
	daily, _ := Parse("@daily")
	for _, c := range []struct {
		name   string
		s      Schedule
		now    string
		window time.Duration
		want   string // empty: nothing due
	}{
		{"at the slot", every5, "2025-03-14 10:05:00", 30 * time.Second, "2025-03-14 10:05:00"},
		{"within the window", every5, "2025-03-14 10:05:29", 30 * time.Second, "2025-03-14 10:05:00"},
		{"at the window's end", every5, "2025-03-14 10:05:30", 30 * time.Second, "2025-03-14 10:05:00"},
		{"past the window: skipped", every5, "2025-03-14 10:05:31", 30 * time.Second, ""},
		{"just before", every5, "2025-03-14 10:04:59", 30 * time.Second, ""},
		{"only the latest of several", every5, "2025-03-14 10:20:10", time.Hour, "2025-03-14 10:20:00"},
		{"a day's slot", daily, "2025-03-15 00:00:12", 30 * time.Second, "2025-03-15 00:00:00"},
		{"a day's slot missed", daily, "2025-03-15 09:00:00", 30 * time.Second, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.s.Due(at(c.now), c.window)
			if c.want == "" && !got.IsZero() || c.want != "" && !got.Equal(at(c.want)) {
				t.Fatalf("Due(%s, %s) = %s, want %q", c.now, c.window, got, c.want)
			}
		})
	}
}

func TestCheckJobs(t *testing.T) {
	ok := func(jobs ...skiff.CronJob) []skiff.CronJob { return jobs }
	for _, c := range []struct {
		name string
		jobs []skiff.CronJob
		want []skiff.CronJob // cleaned up
		msg  string          // the error's, when refused
	}{
		{"none", nil, nil, ""},
		{"cleaned up", ok(skiff.CronJob{Schedule: " */5 * * * * ", Command: "  python manage.py clearsessions\n"}, skiff.CronJob{Schedule: "@Daily", Command: "./backup"}),
			ok(skiff.CronJob{Schedule: "*/5 * * * *", Command: "python manage.py clearsessions"}, skiff.CronJob{Schedule: "@daily", Command: "./backup"}), ""},
		{"same command, other schedule", ok(skiff.CronJob{Schedule: "0 * * * *", Command: "x"}, skiff.CronJob{Schedule: "30 * * * *", Command: "x"}),
			ok(skiff.CronJob{Schedule: "0 * * * *", Command: "x"}, skiff.CronJob{Schedule: "30 * * * *", Command: "x"}), ""},
		{"no command", ok(skiff.CronJob{Schedule: "* * * * *", Command: "x"}, skiff.CronJob{Schedule: "* * * * *", Command: "  "}), nil, "entry 2: no command"},
		{"bad schedule", ok(skiff.CronJob{Schedule: "every day", Command: "x"}), nil, `entry 1: schedule "every day"`},
		{"no schedule", ok(skiff.CronJob{Command: "x"}), nil, "entry 1: no schedule"},
		{"too often", ok(skiff.CronJob{Schedule: "* * * * * *", Command: "x"}), nil, "entry 1: schedule \"* * * * * *\" has six fields"},
		{"duplicate", ok(skiff.CronJob{Schedule: "@hourly", Command: "x"}, skiff.CronJob{Schedule: "@HOURLY ", Command: "x"}), nil, "entry 2: the same command and schedule as entry 1"},
		{"too long", ok(skiff.CronJob{Schedule: "@hourly", Command: strings.Repeat("x", 5000)}), nil, "entry 1: the command is too long"},
		{"too many", make([]skiff.CronJob, MaxJobs+1), nil, "101 entries are too many"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := CheckJobs(c.jobs)
			if c.msg != "" {
				var e *skiff.Error
				if !errors.As(err, &e) || !strings.Contains(e.Message, c.msg) || e.Hint == "" {
					t.Fatalf("CheckJobs = %v; want an error with %q and a hint", err, c.msg)
				}
				return
			}
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("CheckJobs = %+v, %v; want %+v", got, err, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("CheckJobs = %+v; want %+v", got, c.want)
				}
			}
		})
	}
}

func TestJobIDs(t *testing.T) {
	a := skiff.CronJob{Schedule: "0 * * * *", Command: "x"}
	if a.ID() != (skiff.CronJob{Schedule: "0 * * * *", Command: "x"}).ID() || len(a.ID()) != 12 {
		t.Errorf("the same job has IDs %s and another", a.ID())
	}
	for _, b := range []skiff.CronJob{{Schedule: "0 * * * *", Command: "y"}, {Schedule: "1 * * * *", Command: "x"}, {Schedule: "0 * * * * x", Command: ""}} {
		if a.ID() == b.ID() {
			t.Errorf("%+v and %+v have one ID", a, b)
		}
	}
}
