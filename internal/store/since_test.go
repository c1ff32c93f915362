package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/bus/bustest"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// ReadLogs from a time: every line since, the last Tail of them, with the
// other filters, then new lines when following.
func TestReadLogsSince(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, bustest.Start(t), nil, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logN := func(prefix string, n int) {
		for i := range n {
			st.Log("shop", skiff.SourceApp, fmt.Sprintf("web.%d", i%2+1), fmt.Sprintf("%s %d", prefix, i))
			st.Log("other", skiff.SourceApp, "web.1", "other app")
		}
		if err := st.NC.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	logN("before", 2000)
	time.Sleep(50 * time.Millisecond)
	since := time.Now()
	time.Sleep(50 * time.Millisecond)
	logN("after", 10)
	read := func(q store.LogQuery) string {
		var out []string
		q.App = "shop"
		if err := st.ReadLogs(ctx, q, func(l skiff.LogLine) error {
			out = append(out, l.Process+":"+l.Line)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name string
		q    store.LogQuery
		want string
	}{
		{"every line since", store.LogQuery{Since: since, Tail: 100000},
			"web.1:after 0,web.2:after 1,web.1:after 2,web.2:after 3,web.1:after 4,web.2:after 5,web.1:after 6,web.2:after 7,web.1:after 8,web.2:after 9"},
		{"the last 3 since", store.LogQuery{Since: since, Tail: 3}, "web.2:after 7,web.1:after 8,web.2:after 9"},
		{"one process since", store.LogQuery{Since: since, Tail: 100000, Process: "web.2"},
			"web.2:after 1,web.2:after 3,web.2:after 5,web.2:after 7,web.2:after 9"},
		{"since long ago, the last 2", store.LogQuery{Since: since.Add(-time.Hour), Tail: 2}, "web.1:after 8,web.2:after 9"},
		{"since a time to come", store.LogQuery{Since: since.Add(time.Hour), Tail: 100000}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := read(tc.q); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}

	// Following from a time: the history, then what comes.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []string
	go func() {
		time.Sleep(200 * time.Millisecond)
		st.Log("shop", skiff.SourcePlatform, "api", "new line")
	}()
	err = st.ReadLogs(fctx, store.LogQuery{App: "shop", Since: since, Tail: 2, Follow: true, Source: skiff.SourcePlatform}, func(l skiff.LogLine) error {
		got = append(got, l.Line)
		cancel()
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "new line" {
		t.Fatalf("follow since: %q, %v", got, err)
	}
}
