package skiff

import "sort"

// ConfigDiff answers GET /v1/apps/{app}/releases/{version}/diff: what a
// release changed in the config of the release it is compared with, by
// the names of the vars only. Values are secrets: a diff never shows
// them, not even hashed.
type ConfigDiff struct {
	// From is the release compared with, 0 when there is none (the
	// first release: every var is added).
	From int `json:"from"`
	// To is the release the diff is of.
	To int `json:"to"`
	// Added, Removed and Changed name the vars that To has and From had
	// not, that From had and To has not, and that both have with
	// different values; each sorted, never nil.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// Empty reports whether the diff changes nothing.
func (d ConfigDiff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// DiffConfig compares the config vars of two releases by name.
func DiffConfig(from, to map[string]string) ConfigDiff {
	d := ConfigDiff{Added: []string{}, Removed: []string{}, Changed: []string{}}
	for k, v := range to {
		old, ok := from[k]
		switch {
		case !ok:
			d.Added = append(d.Added, k)
		case old != v:
			d.Changed = append(d.Changed, k)
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			d.Removed = append(d.Removed, k)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Strings(d.Changed)
	return d
}
