package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// part is one section of a page: what the API answered for it, or why
// it has nothing to show. A section that fails does not fail its page.
type part[T any] struct {
	V   T
	Err string
}

func load[T any](f func() (T, error)) part[T] {
	v, err := f()
	if err != nil {
		return part[T]{Err: partError(err)}
	}
	return part[T]{V: v}
}

// noData is what a section shows when the API has nothing for it.
const noData = "No data yet."

// partError says why a section is missing: no data yet where this
// platform's API has no route for it (a role not running, or a server
// older than the dashboard), else what the API said.
func partError(err error) string {
	var e *skiff.Error
	if !errors.As(err, &e) {
		return sentence(err.Error())
	}
	if e.Kind == skiff.KindNotFound && strings.HasPrefix(e.Message, "no such route") || e.Kind == skiff.KindUnavailable {
		return noData
	}
	return sentence(e.Message)
}

// appRow is one app of the apps list.
type appRow struct {
	skiff.AppInfo
	Up, Wanted int
	Cost       string // this month's, when the usage API answers
}

// summarize counts what an app runs against what it wants.
func summarize(info skiff.AppInfo) appRow {
	row := appRow{AppInfo: info, Up: info.Instances[skiff.StateUp]}
	for _, n := range info.Formation {
		row.Wanted += n
	}
	return row
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	apps, err := r.client.Apps(ctx)
	if err != nil {
		d.failAPI(w, r, err)
		return
	}
	usage := load(func() (skiff.UsageReport, error) { return r.client.Usage(ctx, "", "") })
	cost := map[string]string{}
	for _, u := range usage.V.Apps {
		cost[u.App] = money(u.Total, usage.V.Currency)
	}
	content := struct {
		Apps  []appRow
		Month string
		Total string
		Usage string // why there is no cost column
	}{Month: d.cfg.Now().UTC().Format("January 2006"), Usage: usage.Err}
	if usage.Err == "" {
		content.Total = money(usage.V.Total, usage.V.Currency)
	}
	for _, a := range apps {
		row := summarize(a)
		if c, ok := cost[a.Name]; ok || usage.Err != "" {
			row.Cost = c
		} else {
			row.Cost = money(0, usage.V.Currency) // nothing used yet this month
		}
		content.Apps = append(content.Apps, row)
	}
	sort.Slice(content.Apps, func(i, j int) bool { return content.Apps[i].Name < content.Apps[j].Name })
	d.render(w, http.StatusOK, "apps", &r.session, page{Title: "Apps", Nav: "apps", Content: content})
}

// releaseRow is a release with what it changed in the config.
type releaseRow struct {
	skiff.ReleaseView
	Diff part[skiff.ConfigDiff]
}

// maxReleases is how many releases the app page lists.
const maxReleases = 10

// nodeProcs are an app's processes on one node.
type nodeProcs struct {
	Node  string
	Procs []skiff.ProcessView
}

// byNode groups processes by node, nodes and processes by name.
func byNode(ps []skiff.ProcessView) []nodeProcs {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Node != ps[j].Node {
			return ps[i].Node < ps[j].Node
		}
		return ps[i].Name < ps[j].Name
	})
	var out []nodeProcs
	for _, p := range ps {
		if n := len(out); n == 0 || out[n-1].Node != p.Node {
			out = append(out, nodeProcs{Node: p.Node})
		}
		out[len(out)-1].Procs = append(out[len(out)-1].Procs, p)
	}
	return out
}

// psContent is the processes section, which the page refreshes by itself.
type psContent struct {
	App   string
	Nodes part[[]nodeProcs]
}

func loadPS(ctx context.Context, c *client.Client, app string) psContent {
	return psContent{App: app, Nodes: load(func() ([]nodeProcs, error) {
		ps, err := c.Processes(ctx, app)
		return byNode(ps), err
	})}
}

// configVar is a config var as the page shows it: its value masked.
type configVar struct {
	Key, Masked string
}

// mask hides a config value, its length too; only an empty one shows.
func mask(v string) string {
	if v == "" {
		return "(empty)"
	}
	return "••••••••"
}

// appContent is everything the app page shows.
type appContent struct {
	App       appRow
	Formation part[[]skiff.FormationEntry]
	PS        psContent
	Releases  part[[]releaseRow]
	Config    part[[]configVar]
	Range     string
	Ranges    []string
	Charts    part[[]chart]
	Addons    part[[]skiff.AddonView]
	Backups   part[[]skiff.Backup]
	Usage     part[*skiff.AppUsage]
	Currency  string
	Events    part[[]skiff.Event]
	Alerts    part[[]skiff.AlertRuleView]
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *request) {
	ctx, c, name := r.Context(), r.client, r.PathValue("app")
	info, err := c.App(ctx, name)
	if err != nil {
		d.failAPI(w, r, err)
		return
	}
	rng := rangeName(r.URL.Query().Get("range"))
	content := appContent{App: summarize(info), Range: rng, Ranges: timeRanges}
	// The sections are independent requests to the API: made at once.
	var wg sync.WaitGroup
	wg.Go(func() {
		content.Formation = load(func() ([]skiff.FormationEntry, error) { return c.Formation(ctx, name) })
	})
	wg.Go(func() { content.PS = loadPS(ctx, c, name) })
	wg.Go(func() { content.Releases = load(func() ([]releaseRow, error) { return releases(ctx, c, name) }) })
	wg.Go(func() {
		content.Config = load(func() ([]configVar, error) {
			cfg, err := c.Config(ctx, name)
			var out []configVar
			for k, v := range cfg.Config {
				out = append(out, configVar{Key: k, Masked: mask(v)})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
			return out, err
		})
	})
	wg.Go(func() {
		content.Charts = load(func() ([]chart, error) {
			s, err := c.Metrics(ctx, name, rng, "", "")
			if err == nil && len(s.Points) == 0 {
				return nil, &skiff.Error{Kind: skiff.KindUnavailable, Message: "no points"}
			}
			// The series spans the range up to now, whatever its points:
			// a pause in the traffic shows as one.
			return buildCharts(s, rng), err
		})
	})
	wg.Go(func() { content.Addons = load(func() ([]skiff.AddonView, error) { return c.Addons(ctx, name) }) })
	wg.Go(func() { content.Backups = load(func() ([]skiff.Backup, error) { return c.Backups(ctx, name) }) })
	wg.Go(func() {
		content.Usage = load(func() (*skiff.AppUsage, error) {
			rep, err := c.Usage(ctx, "", name)
			content.Currency = rep.Currency
			for i := range rep.Apps {
				if rep.Apps[i].App == name {
					return &rep.Apps[i], nil
				}
			}
			return nil, err
		})
	})
	wg.Go(func() {
		content.Events = load(func() ([]skiff.Event, error) {
			evs, err := c.Events(ctx, name, client.EventQuery{Limit: 20})
			return newestFirst(evs), err
		})
	})
	wg.Go(func() { content.Alerts = load(func() ([]skiff.AlertRuleView, error) { return c.Alerts(ctx, name) }) })
	wg.Wait()
	d.render(w, http.StatusOK, "app", &r.session, page{Title: info.Name, Nav: "apps", Content: content})
}

// releases lists an app's newest releases with what each changed in the
// config.
func releases(ctx context.Context, c *client.Client, app string) ([]releaseRow, error) {
	rels, err := c.Releases(ctx, app)
	if err != nil {
		return nil, err
	}
	rels = rels[:min(len(rels), maxReleases)]
	out := make([]releaseRow, len(rels))
	var wg sync.WaitGroup
	for i, rel := range rels {
		out[i].ReleaseView = rel
		wg.Go(func() {
			out[i].Diff = load(func() (skiff.ConfigDiff, error) { return c.ReleaseDiff(ctx, app, rel.Version) })
		})
	}
	wg.Wait()
	return out, nil
}

func (d *Dashboard) psFragment(w http.ResponseWriter, r *request) {
	ps := loadPS(r.Context(), r.client, r.PathValue("app"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages["ps"].ExecuteTemplate(w, "ps", ps); err != nil {
		d.log.Warn("render processes", "err", err)
	}
}

func (d *Dashboard) nodesPage(w http.ResponseWriter, r *request) {
	nodes, err := r.client.Nodes(r.Context())
	if err != nil {
		d.failAPI(w, r, err)
		return
	}
	d.render(w, http.StatusOK, "nodes", &r.session, page{Title: "Nodes", Nav: "nodes", Content: nodes})
}

func (d *Dashboard) eventsPage(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	evs, err := r.client.Events(ctx, "", client.EventQuery{Limit: 100})
	if err != nil {
		d.failAPI(w, r, err)
		return
	}
	content := struct {
		Events []skiff.Event
		Alerts part[[]skiff.AlertRuleView]
	}{Events: newestFirst(evs), Alerts: load(func() ([]skiff.AlertRuleView, error) { return r.client.Alerts(ctx, "") })}
	d.render(w, http.StatusOK, "events", &r.session, page{Title: "Events", Nav: "events", Content: content})
}

// newestFirst reverses events, which the API lists oldest first.
func newestFirst(evs []skiff.Event) []skiff.Event {
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// money formats an amount of a currency.
func money(v float64, currency string) string {
	return strings.TrimSpace(fmt.Sprintf("%.2f %s", v, currency))
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":     func(t time.Time) string { return skiff.Ago(t, time.Now()) },
	"clock":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"bytes":   func(n int64) string { return skiff.HumanBytes(n) },
	"version": skiff.VersionLabel,
	"join":    strings.Join,
	"money":   money,
	"num":     trimFloat,
	// tone is the colour class of a state: ok, bad or wait.
	"tone": func(state any) string {
		switch fmt.Sprint(state) {
		case "up", "ready", "succeeded", "done", "ok", "resolved":
			return "ok"
		case "crashed", "failed", "dead", "error", "firing":
			return "bad"
		}
		return "wait"
	},
}
