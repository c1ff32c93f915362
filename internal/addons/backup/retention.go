package backup

import (
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Policy says which of an add-on's backups to keep. A field of 0 keeps
// none of its kind: start from DefaultPolicy.
type Policy struct {
	// Daily, Weekly and Monthly keep the newest scheduled backup of each
	// of the last so many days, ISO weeks and months (UTC) that have one,
	// as restic's --keep-daily and friends do: a pause in the schedule
	// does not expire the backups from before it. A backup kept by one
	// rule counts for the others too.
	Daily, Weekly, Monthly int
	// Manual keeps the newest so many backups taken for any other reason:
	// by hand, before a destroy, before a restore.
	Manual int
}

// DefaultPolicy keeps a week of daily backups, a month of weekly ones, a
// year of monthly ones, and the last 25 taken by hand.
var DefaultPolicy = Policy{Daily: 7, Weekly: 4, Monthly: 12, Manual: 25}

// failedKept is how long a failed backup is kept, to be looked at.
const failedKept = 24 * time.Hour

// Expired is the backups, of one add-on, that policy p lets go at time
// now, in the order given. A running backup is never expired; a failed one
// is when it started more than a day before now, and does not count
// towards the policy's numbers.
func Expired(backups []skiff.Backup, now time.Time, p Policy) []skiff.Backup {
	keep := make([]bool, len(backups))
	var scheduled, other []int
	for i, b := range backups {
		switch {
		case b.State == skiff.BackupRunning:
			keep[i] = true
		case b.State == skiff.BackupFailed:
			keep[i] = now.Sub(b.StartedAt) <= failedKept
		case b.Kind == skiff.BackupScheduled:
			scheduled = append(scheduled, i)
		default:
			other = append(other, i)
		}
	}
	newestFirst := func(idx []int) {
		sort.SliceStable(idx, func(a, b int) bool {
			return backups[idx[a]].StartedAt.After(backups[idx[b]].StartedAt)
		})
	}
	newestFirst(other)
	for n, i := range other {
		keep[i] = n < p.Manual
	}
	newestFirst(scheduled)
	rules := []struct {
		n      int
		period func(time.Time) int
	}{
		{p.Daily, func(t time.Time) int { y, m, d := t.Date(); return y*10000 + int(m)*100 + d }},
		{p.Weekly, func(t time.Time) int { y, w := t.ISOWeek(); return y*100 + w }},
		{p.Monthly, func(t time.Time) int { y, m, _ := t.Date(); return y*100 + int(m) }},
	}
	for _, r := range rules {
		last, kept := -1, 0
		for _, i := range scheduled {
			if kept >= r.n {
				break
			}
			// Newest first, so the first of a period is its newest.
			if per := r.period(backups[i].StartedAt.UTC()); per != last {
				keep[i] = true
				kept++
				last = per
			}
		}
	}
	var expired []skiff.Backup
	for i, b := range backups {
		if !keep[i] {
			expired = append(expired, b)
		}
	}
	return expired
}
