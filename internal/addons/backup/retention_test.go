package backup

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// at is a time in UTC, "2006-01-02 15:04".
func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// scheduledDaily is a done scheduled backup at hour:00 UTC of every day
// from first to last, with the date as its ID.
func scheduledDaily(first, last string, hour int) []skiff.Backup {
	var bs []skiff.Backup
	for d := at(first + " 00:00"); !d.After(at(last + " 00:00")); d = d.AddDate(0, 0, 1) {
		t := d.Add(time.Duration(hour) * time.Hour)
		bs = append(bs, skiff.Backup{ID: t.Format("2006-01-02 15:04"), Kind: skiff.BackupScheduled,
			State: skiff.BackupDone, StartedAt: t})
	}
	return bs
}

func b(id, kind string, state skiff.BackupState, started time.Time) skiff.Backup {
	return skiff.Backup{ID: id, Kind: kind, State: state, StartedAt: started}
}

func ids(bs []skiff.Backup) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

// kept is the IDs of bs not in expired.
func kept(bs, expired []skiff.Backup) []string {
	gone := ids(expired)
	out := []string{}
	for _, b := range bs {
		if !slices.Contains(gone, b.ID) {
			out = append(out, b.ID)
		}
	}
	return out
}

func TestExpired(t *testing.T) {
	now := at("2026-03-15 12:00")
	manyManual := func() []skiff.Backup {
		var bs []skiff.Backup
		kinds := []string{skiff.BackupManual, skiff.BackupDestroy, skiff.BackupRestore}
		for i := range 30 {
			bs = append(bs, b(fmt.Sprintf("m%02d", i), kinds[i%3], skiff.BackupDone, now.Add(-time.Duration(30-i)*time.Hour)))
		}
		return bs
	}
	for _, tc := range []struct {
		name    string
		backups []skiff.Backup
		policy  Policy
		kept    []string // in the order of backups
	}{
		{
			name: "daily keeps the newest of each of the last days",
			backups: append(scheduledDaily("2026-03-05", "2026-03-15", 2),
				scheduledDaily("2026-03-05", "2026-03-14", 14)...),
			policy: Policy{Daily: 3},
			kept:   []string{"2026-03-15 02:00", "2026-03-13 14:00", "2026-03-14 14:00"},
		},
		{
			name: "daily counts days that have a backup, not calendar days",
			backups: []skiff.Backup{
				b("old1", skiff.BackupScheduled, skiff.BackupDone, at("2026-01-01 02:00")),
				b("old2", skiff.BackupScheduled, skiff.BackupDone, at("2026-01-02 02:00")),
				b("old3", skiff.BackupScheduled, skiff.BackupDone, at("2026-01-03 02:00")),
			},
			policy: Policy{Daily: 2},
			kept:   []string{"old2", "old3"},
		},
		{
			name: "days are UTC days",
			backups: []skiff.Backup{
				// a is 23:30 on the 14th in UTC, b midnight of the 15th.
				b("a", skiff.BackupScheduled, skiff.BackupDone, time.Date(2026, 3, 15, 0, 30, 0, 0, time.FixedZone("CET", 3600))),
				b("b", skiff.BackupScheduled, skiff.BackupDone, time.Date(2026, 3, 15, 1, 0, 0, 0, time.FixedZone("CET", 3600))),
				b("c", skiff.BackupScheduled, skiff.BackupDone, at("2026-03-14 22:00")),
			},
			policy: Policy{Daily: 2},
			kept:   []string{"a", "b"},
		},
		{
			name:    "weekly keeps the newest of each ISO week across a year",
			backups: scheduledDaily("2025-12-15", "2026-01-11", 3),
			policy:  Policy{Weekly: 4},
			// 2025-12-29 to 2026-01-04 is 2026-W01: the 31st is not its newest.
			kept: []string{"2025-12-21 03:00", "2025-12-28 03:00", "2026-01-04 03:00", "2026-01-11 03:00"},
		},
		{
			name:    "monthly keeps the newest of each month across a year",
			backups: scheduledDaily("2025-10-20", "2026-02-10", 23),
			policy:  Policy{Monthly: 4},
			kept:    []string{"2025-11-30 23:00", "2025-12-31 23:00", "2026-01-31 23:00", "2026-02-10 23:00"},
		},
		{
			name:    "default policy over more than a year",
			backups: scheduledDaily("2025-01-01", "2026-03-15", 3),
			policy:  DefaultPolicy,
			kept: []string{
				// monthly
				"2025-04-30 03:00", "2025-05-31 03:00", "2025-06-30 03:00", "2025-07-31 03:00",
				"2025-08-31 03:00", "2025-09-30 03:00", "2025-10-31 03:00", "2025-11-30 03:00",
				"2025-12-31 03:00", "2026-01-31 03:00",
				"2026-02-22 03:00",                     // weekly
				"2026-02-28 03:00",                     // monthly
				"2026-03-01 03:00", "2026-03-08 03:00", // weekly
				"2026-03-09 03:00", "2026-03-10 03:00", "2026-03-11 03:00", "2026-03-12 03:00", // daily
				"2026-03-13 03:00", "2026-03-14 03:00", "2026-03-15 03:00",
			},
		},
		{
			name:    "manual keeps the newest of every other kind",
			backups: append(manyManual(), scheduledDaily("2026-03-10", "2026-03-15", 2)...),
			policy:  Policy{Daily: 7, Manual: 25},
			kept: append([]string{"m05", "m06", "m07", "m08", "m09", "m10", "m11", "m12", "m13", "m14", "m15",
				"m16", "m17", "m18", "m19", "m20", "m21", "m22", "m23", "m24", "m25", "m26", "m27", "m28", "m29"},
				ids(scheduledDaily("2026-03-10", "2026-03-15", 2))...),
		},
		{
			name: "failed go after a day and count for nothing",
			backups: []skiff.Backup{
				b("failed-old", skiff.BackupScheduled, skiff.BackupFailed, now.Add(-25*time.Hour)),
				b("failed-new", skiff.BackupScheduled, skiff.BackupFailed, now.Add(-3*time.Hour)),
				b("failed-manual-old", skiff.BackupManual, skiff.BackupFailed, now.Add(-48*time.Hour)),
				b("done-yesterday", skiff.BackupScheduled, skiff.BackupDone, now.Add(-26*time.Hour)),
				b("done-before", skiff.BackupScheduled, skiff.BackupDone, now.Add(-50*time.Hour)),
				b("manual", skiff.BackupManual, skiff.BackupDone, now.Add(-72*time.Hour)),
			},
			policy: Policy{Daily: 1, Manual: 1},
			kept:   []string{"failed-new", "done-yesterday", "manual"},
		},
		{
			name: "running ones are never expired",
			backups: []skiff.Backup{
				b("running-ancient", skiff.BackupScheduled, skiff.BackupRunning, now.AddDate(-2, 0, 0)),
				b("running-manual", skiff.BackupManual, skiff.BackupRunning, now.Add(-time.Hour)),
				b("manual", skiff.BackupManual, skiff.BackupDone, now.Add(-2*time.Hour)),
				b("manual-older", skiff.BackupManual, skiff.BackupDone, now.Add(-3*time.Hour)),
			},
			policy: Policy{Manual: 1},
			kept:   []string{"running-ancient", "running-manual", "manual"},
		},
		{
			name: "a zero policy keeps only what runs and what failed lately",
			backups: []skiff.Backup{
				b("s", skiff.BackupScheduled, skiff.BackupDone, now.Add(-time.Hour)),
				b("m", skiff.BackupManual, skiff.BackupDone, now.Add(-time.Hour)),
				b("r", skiff.BackupManual, skiff.BackupRunning, now),
				b("f", skiff.BackupManual, skiff.BackupFailed, now),
			},
			kept: []string{"r", "f"},
		},
		{name: "none", kept: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.backups)
			expired := Expired(tc.backups, now, tc.policy)
			if !reflect.DeepEqual(in, tc.backups) {
				t.Error("Expired changed its argument")
			}
			got := kept(tc.backups, expired)
			want := slices.Clone(tc.kept)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("kept %q\nwant %q", got, want)
			}
			// Expired lists backups in the order given.
			gone := ids(expired)
			var order []string
			for _, b := range tc.backups {
				if slices.Contains(gone, b.ID) {
					order = append(order, b.ID)
				}
			}
			if !slices.Equal(gone, order) && len(gone) > 0 {
				t.Errorf("expired in the order %q, want %q", gone, order)
			}
		})
	}
}

// Expiring what Expired returns and asking again expires nothing more: a
// policy is stable, so retention can run at any time.
func TestExpiredIsStable(t *testing.T) {
	now := at("2026-03-15 12:00")
	bs := scheduledDaily("2024-06-01", "2026-03-15", 3)
	bs = append(bs, scheduledDaily("2025-06-01", "2026-03-15", 15)...)
	for i := range 40 {
		bs = append(bs, b(fmt.Sprintf("m%d", i), skiff.BackupManual, skiff.BackupDone, now.Add(-time.Duration(i)*47*time.Hour)))
	}
	gone := ids(Expired(bs, now, DefaultPolicy))
	var left []skiff.Backup
	for _, b := range bs {
		if !slices.Contains(gone, b.ID) {
			left = append(left, b)
		}
	}
	if again := Expired(left, now, DefaultPolicy); len(again) > 0 {
		t.Errorf("a second pass expired %q", ids(again))
	}
	if len(left) != 7+3+11+25 {
		t.Errorf("kept %d backups, want 46", len(left))
	}
}
