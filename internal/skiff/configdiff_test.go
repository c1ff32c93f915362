package skiff

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDiffConfig(t *testing.T) {
	for _, c := range []struct {
		name                    string
		from, to                map[string]string
		added, removed, changed []string
	}{
		{name: "first release", from: nil, to: map[string]string{"B": "2", "A": "1"},
			added: []string{"A", "B"}, removed: []string{}, changed: []string{}},
		{name: "no change", from: map[string]string{"A": "1"}, to: map[string]string{"A": "1"},
			added: []string{}, removed: []string{}, changed: []string{}},
		{name: "all three", from: map[string]string{"KEEP": "x", "OLD": "o", "PASSWORD": "hunter2", "Z": "1"},
			to:    map[string]string{"KEEP": "x", "NEW": "n", "PASSWORD": "hunter3", "Z": "2"},
			added: []string{"NEW"}, removed: []string{"OLD"}, changed: []string{"PASSWORD", "Z"}},
		{name: "emptied", from: map[string]string{"A": "1", "B": ""}, to: map[string]string{},
			added: []string{}, removed: []string{"A", "B"}, changed: []string{}},
		{name: "empty value is a value", from: map[string]string{"A": ""}, to: map[string]string{"A": "set"},
			added: []string{}, removed: []string{}, changed: []string{"A"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := DiffConfig(c.from, c.to)
			if !reflect.DeepEqual(d.Added, c.added) || !reflect.DeepEqual(d.Removed, c.removed) || !reflect.DeepEqual(d.Changed, c.changed) {
				t.Fatalf("DiffConfig = +%v -%v ~%v, want +%v -%v ~%v", d.Added, d.Removed, d.Changed, c.added, c.removed, c.changed)
			}
			if d.Empty() != (len(c.added)+len(c.removed)+len(c.changed) == 0) {
				t.Fatalf("Empty() = %v", d.Empty())
			}
			// Names only: no value of either side may reach the JSON.
			data, _ := json.Marshal(d)
			for _, m := range []map[string]string{c.from, c.to} {
				for k, v := range m {
					if v != "" && len(v) > 1 && strings.Contains(string(data), v) && !strings.Contains(k, v) {
						t.Fatalf("diff JSON %s shows the value of %s", data, k)
					}
				}
			}
		})
	}
}
