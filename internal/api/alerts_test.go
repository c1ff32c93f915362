package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// TestWebhooksAPI: add (a secret made and shown once, or one given),
// list with the last deliveries, remove; bad input says what to do; the
// platform's webhooks are the admins'.
func TestWebhooksAPI(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	var made skiff.WebhookView
	if code, _ := e.do("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://hooks.example.com/x", Events: []string{"deploy", "backup"}}, &made); code != 201 ||
		!strings.HasPrefix(made.Secret, "whsec_") || made.Format != skiff.FormatSkiff || made.App != "shop" {
		t.Fatalf("add = %d %+v", code, made)
	}
	stored, _, err := e.st.Webhooks.Get(ctx, skiff.WebhookKey("shop", made.ID))
	if err != nil {
		t.Fatal(err)
	}
	if secret, err := e.st.Unseal(stored.SecretSealed); err != nil || string(secret) != made.Secret {
		t.Fatalf("stored secret %q, %v; want the one shown", secret, err)
	}
	e.st.Deliveries.Put(ctx, stored.Key(), skiff.WebhookStatus{Deliveries: []skiff.DeliveryResult{{ID: "7", Event: "release.deployed", State: skiff.DeliveryDelivered, Status: 200, Attempts: 1}}})
	var slack skiff.WebhookView
	e.do("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://hooks.slack.com/services/T/B/X", Format: "slack", Secret: "a-secret-of-my-own"}, &slack)
	if slack.Secret != "a-secret-of-my-own" || strings.Join(slack.Events, ",") != "all" {
		t.Fatalf("second webhook %+v", slack)
	}
	var list []skiff.WebhookView
	if code, _ := e.do("GET", "/v1/apps/shop/webhooks", nil, &list); code != 200 || len(list) != 2 || list[0].ID != made.ID ||
		list[0].Secret != "" || len(list[0].Deliveries) != 1 || list[0].Deliveries[0].Status != 200 || list[1].Deliveries == nil {
		t.Fatalf("list = %d %+v", code, list)
	}
	e.expect("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "ftp://x"}, 400, skiff.KindInvalid, "invalid webhook URL")
	e.expect("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://x.example", Events: []string{"deploys"}}, 400, skiff.KindInvalid, `unknown event filter "deploys"`)
	e.expect("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://x.example", Format: "teams"}, 400, skiff.KindInvalid, "unknown webhook format")
	e.expect("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://x.example", Secret: "short"}, 400, skiff.KindInvalid, "too short")
	e.expect("DELETE", "/v1/apps/shop/webhooks/nope", nil, 404, skiff.KindNotFound, "no webhook")
	if code, _ := e.do("DELETE", "/v1/apps/shop/webhooks/"+made.ID, nil, nil); code != 204 {
		t.Fatalf("remove = %d", code)
	}
	if _, _, err := e.st.Deliveries.Get(ctx, stored.Key()); err == nil {
		t.Fatal("the removed webhook's deliveries are kept")
	}
	e.do("GET", "/v1/apps/shop/webhooks", nil, &list)
	if len(list) != 1 || list[0].ID != slack.ID {
		t.Fatalf("after remove: %+v", list)
	}

	var platform skiff.WebhookView
	if code, _ := e.do("POST", "/v1/webhooks", skiff.WebhookRequest{URL: "https://ops.example.com", Events: []string{"node", "alert"}}, &platform); code != 201 || platform.App != "" {
		t.Fatalf("platform webhook = %d %+v", code, platform)
	}
	var ada skiff.UserToken
	e.do("POST", "/v1/users", skiff.UserRequest{Name: "ada"}, &ada)
	e.token = ada.Token
	e.expect("GET", "/v1/webhooks", nil, 403, skiff.KindForbidden, "only admins")
	e.expect("GET", "/v1/apps/shop/webhooks", nil, 403, skiff.KindForbidden, "belongs to another user")
}

// TestAlertRulesAPI: rules with their defaults, refused when they make no
// sense, listed with their alerts, removed.
func TestAlertRulesAPI(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "blog"}, nil)
	var down skiff.AlertRuleView
	if code, _ := e.do("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "app_down", Emails: []string{"ops@example.com"}}, &down); code != 201 ||
		down.For != skiff.DefaultAppDownFor || down.App != "shop" || !strings.Contains(down.Description, "shop has no web process up for 1m0s") {
		t.Fatalf("add = %d %+v", code, down)
	}
	var rate skiff.AlertRuleView
	e.do("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "error_rate"}, &rate)
	if rate.Threshold != skiff.DefaultErrorRate || rate.Window != skiff.DefaultMetricWindow {
		t.Fatalf("error_rate defaults %+v", rate)
	}
	var node skiff.AlertRuleView
	if code, _ := e.do("POST", "/v1/alerts", skiff.AlertRuleRequest{Kind: "node_down"}, &node); code != 201 || node.App != "" {
		t.Fatalf("platform rule = %d %+v", code, node)
	}
	var everyApp skiff.AlertRuleView
	e.do("POST", "/v1/alerts", skiff.AlertRuleRequest{Kind: "crash_loop"}, &everyApp)
	e.do("POST", "/v1/apps/blog/alerts", skiff.AlertRuleRequest{Kind: "backup_failed"}, nil)

	e.expect("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "node_down"}, 400, skiff.KindInvalid, "about the platform's nodes")
	e.expect("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "app_dead"}, 400, skiff.KindInvalid, `unknown alert kind "app_dead"`)
	e.expect("POST", "/v1/alerts", skiff.AlertRuleRequest{Kind: "disk", Threshold: 140}, 400, skiff.KindInvalid, "over 100%")
	e.expect("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "p99", Window: skiff.Duration(2 * time.Hour)}, 400, skiff.KindInvalid, "too long")
	e.expect("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "app_down", Window: skiff.Duration(time.Minute)}, 400, skiff.KindInvalid, "take no window")
	e.expect("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "app_down", Emails: []string{"ops"}}, 400, skiff.KindInvalid, "invalid email")

	// An alert of the every-app rule about shop, and one about blog.
	for _, app := range []string{"shop", "blog"} {
		a := skiff.Alert{Rule: everyApp.Key(), Kind: everyApp.Kind, App: app, State: skiff.AlertFiring, Message: app + " loops", Since: time.Now()}
		e.st.Alerts.Put(ctx, a.Key(), a)
	}
	var shop []skiff.AlertRuleView
	e.do("GET", "/v1/apps/shop/alerts", nil, &shop)
	if len(shop) != 3 || shop[0].ID != down.ID || shop[2].ID != everyApp.ID || len(shop[2].Alerts) != 1 || shop[2].Alerts[0].App != "shop" {
		t.Fatalf("shop's rules: %+v", shop)
	}
	var all []skiff.AlertRuleView
	e.do("GET", "/v1/alerts", nil, &all)
	if len(all) != 5 {
		t.Fatalf("every rule: %+v", all)
	}
	e.expect("DELETE", "/v1/alerts/"+down.ID, nil, 404, skiff.KindNotFound, "no alert rule") // shop's, not the platform's
	if code, _ := e.do("DELETE", "/v1/apps/shop/alerts/"+down.ID, nil, nil); code != 204 {
		t.Fatalf("remove = %d", code)
	}
	e.do("GET", "/v1/apps/shop/alerts", nil, &shop)
	if len(shop) != 2 {
		t.Fatalf("after remove: %+v", shop)
	}
}

// TestEventsAPI: an app's events, newest so many, since a time, of some
// kinds; the admins' view has the platform's too.
func TestEventsAPI(t *testing.T) {
	e := start(t)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil) // app.created
	old := time.Now().Add(-3 * time.Hour)
	e.st.Emit(skiff.Event{App: "shop", Type: skiff.EventInstanceCrashed, Message: "old crash", Time: old})
	e.st.Emit(skiff.Event{App: "shop", Type: skiff.EventInstanceOOM, Message: "out of memory"})
	e.st.Emit(skiff.Event{App: "shop", Type: skiff.EventScaled, Message: "scaled"})
	e.st.Emit(skiff.Event{Type: skiff.EventNodeDead, Node: "n2", Message: "node n2 is dead"})
	messages := func(path string) string {
		t.Helper()
		var evs []skiff.Event
		deadline := time.Now().Add(5 * time.Second)
		for {
			if code, apiErr := e.do("GET", path, nil, &evs); code != 200 {
				t.Fatalf("GET %s = %d %+v", path, code, apiErr)
			}
			if len(evs) > 0 || time.Now().After(deadline) {
				break
			}
		}
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Message)
		}
		return strings.Join(out, "; ")
	}
	// The events are published without waiting: the last one shows when
	// all have landed.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(messages("/v1/events"), "node n2 is dead") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := messages("/v1/apps/shop/events"); got != "App created by admin; old crash; out of memory; scaled" {
		t.Fatalf("events: %s", got)
	}
	if got := messages("/v1/apps/shop/events?limit=2"); got != "out of memory; scaled" {
		t.Fatalf("newest 2: %s", got)
	}
	if got := messages("/v1/apps/shop/events?since=1h&type=crash"); got != "out of memory" {
		t.Fatalf("crashes of the last hour: %s", got)
	}
	if got := messages("/v1/events?app=_platform"); got != "node n2 is dead" {
		t.Fatalf("platform events: %s", got)
	}
	e.expect("GET", "/v1/apps/shop/events?since=yesterday", nil, 400, skiff.KindInvalid, "invalid --since")
	e.expect("GET", "/v1/apps/shop/events?limit=0", nil, 400, skiff.KindInvalid, "invalid limit")
	e.expect("GET", "/v1/apps/shop/events?type=crashes", nil, 400, skiff.KindInvalid, "unknown event filter")
}

// An app destroyed takes its webhooks, their deliveries and its alert
// rules with it (an app of the same name later must not inherit them);
// the platform's stay.
func TestDestroyRemovesNotices(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	var hook, platform skiff.WebhookView
	e.do("POST", "/v1/apps/shop/webhooks", skiff.WebhookRequest{URL: "https://hooks.example.com/x"}, &hook)
	e.do("POST", "/v1/webhooks", skiff.WebhookRequest{URL: "https://ops.example.com"}, &platform)
	e.st.Deliveries.Put(ctx, skiff.WebhookKey("shop", hook.ID), skiff.WebhookStatus{})
	var rule, everyApp skiff.AlertRuleView
	e.do("POST", "/v1/apps/shop/alerts", skiff.AlertRuleRequest{Kind: "app_down"}, &rule)
	e.do("POST", "/v1/alerts", skiff.AlertRuleRequest{Kind: "crash_loop"}, &everyApp)
	if hook.ID == "" || platform.ID == "" || rule.ID == "" || everyApp.ID == "" {
		t.Fatalf("made %+v %+v %+v %+v", hook, platform, rule, everyApp)
	}
	if code, _ := e.do("DELETE", "/v1/apps/shop?confirm=shop", nil, nil); code != 204 {
		t.Fatalf("destroy = %d", code)
	}
	if _, _, err := e.st.Webhooks.Get(ctx, skiff.WebhookKey("shop", hook.ID)); err == nil {
		t.Error("the destroyed app's webhook is kept")
	}
	if _, _, err := e.st.Deliveries.Get(ctx, skiff.WebhookKey("shop", hook.ID)); err == nil {
		t.Error("the destroyed app's deliveries are kept")
	}
	if _, _, err := e.st.AlertRules.Get(ctx, skiff.AlertRuleKey("shop", rule.ID)); err == nil {
		t.Error("the destroyed app's alert rule is kept")
	}
	if _, _, err := e.st.Webhooks.Get(ctx, skiff.WebhookKey("", platform.ID)); err != nil {
		t.Errorf("the platform's webhook: %v", err)
	}
	if _, _, err := e.st.AlertRules.Get(ctx, skiff.AlertRuleKey("", everyApp.ID)); err != nil {
		t.Errorf("the platform's alert rule: %v", err)
	}
}
