package usage

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/api"
	"github.com/skiff-paas/skiff/internal/api/apitest"
	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// harness is an API and a running meter over one real bus, with a clock
// the test moves.
type harness struct {
	t     *testing.T
	srv   *apitest.Server
	st    *store.Store
	m     *Meter
	admin *client.Client
	ahead atomic.Int64 // how far the meter's clock is ahead of the real one
}

var prices = skiff.Prices{Currency: "EUR", CPUHour: 3.6, MemoryGBHour: 0.5, InstanceHour: map[string]float64{"1x": 0.1},
	BandwidthGB: 2, AddonHour: map[string]float64{"postgres:shared": 0.01}, DatabaseGBMonth: 7.3}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t}
	h.srv = apitest.Start(t, api.Config{Domain: "skiff.test"})
	h.st = h.srv.Store
	m, err := New(Config{Node: "n1", Prices: prices, Tick: time.Hour, Grace: time.Minute,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.ahead.Load())) }}, h.st)
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !m.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("meter not ready")
		}
	}
	h.admin = client.New(h.srv.URL, h.srv.Token)
	return h
}

// samples publishes, for app, n instance samples of 10 s each ending
// from at on, every 10 s, and router samples with bytes.
func (h *harness) samples(app string, at time.Time, n int, cpu float64, bytes int64) {
	h.t.Helper()
	ctx := context.Background()
	for i := range n {
		t := at.Add(time.Duration(i) * 10 * time.Second)
		s := skiff.UsageSample{App: app, Instance: "web.1", ID: "i1", Time: t, Interval: 10, CPUSeconds: cpu,
			MemoryByteSeconds: 10 * gib / 4, Memory: gib / 4}
		if err := h.st.RecordUsage(ctx, s); err != nil {
			h.t.Fatal(err)
		}
		if err := h.st.RecordRouterSample(ctx, skiff.RouterSample{App: app, Node: "n1", Time: t, Interval: 10, BytesOut: bytes,
			Requests: skiff.StatusCounts{0, 1}}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) report(c *client.Client, month, app string) skiff.UsageReport {
	h.t.Helper()
	rep, err := c.Usage(context.Background(), month, app)
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func item(t *testing.T, a skiff.AppUsage, name string) skiff.UsageItem {
	t.Helper()
	for _, it := range a.Items {
		if it.Item == name {
			return it
		}
	}
	t.Fatalf("%s has no item %s: %+v", a.App, name, a.Items)
	return skiff.UsageItem{}
}

// TestReportOfSamples: a report of the current month counts the samples
// up to the last one, prices each line at the configured price, and
// shows each user the apps it may use; admins every app that used
// anything.
func TestReportOfSamples(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Minute)
	month := skiff.MonthOf(now)
	for _, app := range []string{"shop", "blog"} {
		if _, err := h.admin.CreateApp(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	h.samples("shop", now, 6, 0.5, 1<<20)
	h.samples("blog", now, 2, 1, 0)
	h.samples("gone", now, 1, 1, 0) // an app deleted since
	addon := func(at time.Time) {
		s := skiff.AddonUsageSample{App: "shop", Addon: "postgres-1", Type: "postgres", Plan: "shared",
			AddonUsage: skiff.AddonUsage{Time: at, Bytes: gib}}
		if err := publishJSON(h.st, skiff.AddonUsageSubject("shop", "postgres-1"), s); err != nil {
			t.Fatal(err)
		}
	}
	addon(now.Add(-time.Minute))
	addon(now)

	rep := h.report(h.admin, month, "shop")
	if rep.Month != month || rep.Currency != "EUR" || len(rep.Apps) != 1 || rep.Prices.CPUHour != 3.6 {
		t.Fatalf("report %+v", rep)
	}
	shop := rep.Apps[0]
	if u := shop.Usage; !near(u.CPUSeconds, 3) || !near(u.InstanceHours["1x"], 60.0/3600) || !near(u.MemoryGBHours, 15.0/3600) ||
		u.BandwidthBytes != 6<<20 || u.Requests != 6 || !near(u.Addons["postgres-1"].Hours, 1.0/60) {
		t.Errorf("usage %+v", u)
	}
	for _, w := range []struct {
		item      string
		qty, cost float64
	}{
		{skiff.ItemCPU, 3.0 / 3600, 3.0 / 3600 * 3.6},
		{skiff.ItemMemory, 15.0 / 3600, 15.0 / 3600 * 0.5},
		{skiff.ItemInstances("1x"), 60.0 / 3600, 60.0 / 3600 * 0.1},
		{skiff.ItemBandwidth, 6.0 / 1024, 6.0 / 1024 * 2},
		{skiff.ItemAddon("postgres-1"), 1.0 / 60, 1.0 / 60 * 0.01},
		{skiff.ItemData("postgres-1"), 1.0 / 60 / 730, 1.0 / 60 / 730 * 7.3},
	} {
		if it := item(t, shop, w.item); !near(it.Quantity, w.qty) || !near(it.Cost, w.cost) {
			t.Errorf("%s: %+v, want quantity %v cost %v", w.item, it, w.qty, w.cost)
		}
	}
	var total float64
	for _, it := range shop.Items {
		total += it.Cost
	}
	if !near(shop.Total, total) || !near(rep.Total, total) {
		t.Errorf("totals %v %v, want %v", shop.Total, rep.Total, total)
	}

	// An admin sees every app that used anything, deleted ones too.
	all := h.report(h.admin, month, "")
	if names := appNames(all); names != "blog gone shop" {
		t.Errorf("admin sees %s", names)
	}
	if _, err := h.admin.Usage(ctx, month, "gone"); err != nil {
		t.Errorf("admin, usage of a deleted app: %v", err)
	}
	if _, err := h.admin.Usage(ctx, month, "never"); skiff.KindOf(err) != skiff.KindNotFound {
		t.Errorf("admin, usage of an app that never was: %v", err)
	}

	// A user sees the apps it owns, even those that used nothing.
	user, err := h.admin.CreateUser(ctx, "ann", false)
	if err != nil {
		t.Fatal(err)
	}
	ann := client.New(h.srv.URL, user.Token)
	if _, err := ann.CreateApp(ctx, "anns"); err != nil {
		t.Fatal(err)
	}
	mine := h.report(ann, month, "")
	if names := appNames(mine); names != "anns" || mine.Total != 0 || len(mine.Apps[0].Items) != 3 {
		t.Errorf("ann sees %s: %+v", names, mine)
	}
	h.srv.Store.Apps.Update(ctx, "shop", func(a *skiff.App) error { a.Owner = "bob"; return nil })
	for app, kind := range map[string]skiff.Kind{"shop": skiff.KindForbidden, "gone": skiff.KindNotFound, "Bad!": skiff.KindInvalid} {
		if _, err := ann.Usage(ctx, month, app); skiff.KindOf(err) != kind {
			t.Errorf("ann, usage of %s: %v, want %s", app, err, kind)
		}
	}
	if _, err := h.admin.Usage(ctx, "2026-13", ""); skiff.KindOf(err) != skiff.KindInvalid || !strings.Contains(err.Error(), "invalid month") {
		t.Errorf("month 2026-13: %v", err)
	}

	// CSV: a row per item, a total per app and one for all.
	var buf bytes.Buffer
	if err := h.admin.UsageCSV(ctx, month, "", &buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "month,app,item,description,quantity,unit,unit_price,cost,currency" {
		t.Errorf("header %v", rows[0])
	}
	last := rows[len(rows)-1]
	if last[1] != "" || last[2] != "total" || last[8] != "EUR" || len(rows) != 1+len(all.Apps)+itemCount(all)+1 {
		t.Errorf("CSV rows:\n%v", rows)
	}
	for _, r := range rows {
		if r[1] == "shop" && r[2] == skiff.ItemCPU && (r[4] != strconv.FormatFloat(3.0/3600, 'f', -1, 64) || r[6] != "3.6") {
			t.Errorf("CSV cpu row %v", r)
		}
	}
}

// TestFoldedHours: once an hour is over, the leader folds it into records;
// reports then read the records, not the samples, and add up to the
// same. Folding again stores the same records.
func TestFoldedHours(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	start := time.Now().UTC()
	h.samples("shop", start, 3, 1, 1000)
	month := skiff.MonthOf(start)
	before := h.report(h.admin, month, "shop")

	// Two hours on, the samples' hour is over.
	h.ahead.Store(int64(2 * time.Hour))
	if err := h.m.FoldDue(ctx); err != nil {
		t.Fatal(err)
	}
	hour := start.Truncate(time.Hour)
	rec, _, err := h.st.UsageHours.Get(ctx, skiff.UsageHourKey("shop", hour))
	if err != nil {
		t.Fatal(err)
	}
	if !near(rec.CPUSeconds, 3) || rec.BandwidthBytes != 3000 || !rec.Hour.Equal(hour) {
		t.Errorf("record %+v", rec)
	}
	mark, _, err := h.st.UsageHours.Get(ctx, skiff.UsageFoldedKey)
	if want := time.Now().Add(2 * time.Hour).Add(-time.Minute).UTC().Truncate(time.Hour); err != nil || !mark.Hour.Equal(want) {
		t.Errorf("folded up to %v, %v; want %v", mark.Hour, err, want)
	}

	// Folding again changes nothing.
	if _, err := h.m.FoldHour(ctx, hour); err != nil {
		t.Fatal(err)
	}
	again, _, _ := h.st.UsageHours.Get(ctx, skiff.UsageHourKey("shop", hour))
	if again.CPUSeconds != rec.CPUSeconds || again.BandwidthBytes != rec.BandwidthBytes {
		t.Errorf("folded again: %+v, was %+v", again, rec)
	}

	// With the samples gone, the report is the same: it reads the records.
	if err := h.st.JS.DeleteStream(ctx, skiff.StreamUsage); err != nil {
		t.Fatal(err)
	}
	after := h.report(h.admin, month, "shop")
	if !near(after.Apps[0].Usage.CPUSeconds, before.Apps[0].Usage.CPUSeconds) || !near(after.Total, before.Total) ||
		after.Apps[0].Usage.BandwidthBytes != 3000 {
		t.Errorf("after the fold: %+v\nbefore: %+v", after.Apps[0], before.Apps[0])
	}
}

func publishJSON(st *store.Store, subject string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = st.JS.Publish(context.Background(), subject, data)
	return err
}

func appNames(r skiff.UsageReport) string {
	var names []string
	for _, a := range r.Apps {
		names = append(names, a.App)
	}
	return strings.Join(names, " ")
}

func itemCount(r skiff.UsageReport) int {
	n := 0
	for _, a := range r.Apps {
		n += len(a.Items)
	}
	return n
}

// BenchmarkReportOfAMonth: a month's report of 10 apps reads 720 folded
// hours of each.
func BenchmarkReportOfAMonth(b *testing.B) {
	srv := apitest.Start(b, api.Config{Domain: "skiff.test"})
	ctx := context.Background()
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for app := range 10 {
		for h := range 31 * 24 {
			hour := from.Add(time.Duration(h) * time.Hour)
			name := "app" + strconv.Itoa(app)
			if _, err := srv.Store.UsageHours.Put(ctx, skiff.UsageHourKey(name, hour), skiff.UsageHour{App: name, Hour: hour,
				CPUSeconds: 1, InstanceHours: map[string]float64{"1x": 1}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	srv.Store.UsageHours.Put(ctx, skiff.UsageFoldedKey, skiff.UsageHour{Hour: from.AddDate(0, 1, 0)})
	m, _ := New(Config{Node: "n1", Prices: prices}, srv.Store)
	b.ResetTimer()
	for range b.N {
		rep, err := m.Report(ctx, skiff.UsageRequest{Month: "2026-10", All: true})
		if err != nil || len(rep.Apps) != 10 || rep.Apps[0].Usage.CPUSeconds != 744 {
			b.Fatalf("%v %+v", err, rep.Apps)
		}
	}
}

// BenchmarkFoldHour: an hour of 100 instances sampled every 10 s (36,000
// samples) folded into records.
func BenchmarkFoldHour(b *testing.B) {
	srv := apitest.Start(b, api.Config{Domain: "skiff.test"})
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	for i := range 36000 {
		s := skiff.UsageSample{App: "app" + strconv.Itoa(i%20), ID: strconv.Itoa(i % 100), Time: hour.Add(time.Duration(i/100) * 10 * time.Second),
			Interval: 10, CPUSeconds: 0.1}
		data, _ := json.Marshal(s)
		if _, err := srv.Store.JS.PublishAsync(skiff.UsageSubject(s.App, s.ID), data); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-srv.Store.JS.PublishAsyncComplete()
		}
	}
	m, _ := New(Config{Node: "n1", Prices: prices}, srv.Store)
	b.ResetTimer()
	for range b.N {
		n, err := m.FoldHour(ctx, hour)
		if err != nil || n != 20 {
			b.Fatal(n, err)
		}
	}
}
