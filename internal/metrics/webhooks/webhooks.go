// Package webhooks is the part of the metrics role that tells people of
// events: it POSTs them, signed, to webhooks, and emails alerts.
//
// Two durable JetStream consumers carry the work, so that nothing is lost
// when a node restarts and each delivery is made by one node of all
// those running the role:
//
//	EVENTS ──(consumer "webhooks")──► dispatch: the event's app's webhooks
//	    and the platform's that match it, and an alert's emails
//	    ──► one DeliveryJob per target on DELIVERIES (deduplicated by
//	    event sequence and target) ──► ack the event
//	DELIVERIES ──(consumer "deliveries")──► deliver: POST or email
//	    2xx ──► ack; status delivered
//	    else ──► nak with a delay of Backoff × 3^(try-1); status retrying
//	    after Tries tries ──► term; status failed
//
// A webhook's last deliveries are kept in the deliveries bucket under its
// key (skiff.WebhookStatus) for skiff webhooks to show.
package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// Consumer names.
const (
	dispatchConsumer = "webhooks"
	deliverConsumer  = "deliveries"
)

// Config configures the deliverer.
type Config struct {
	// Tries is how many times a delivery is tried before it is given up
	// (default 5).
	Tries int
	// Backoff is the wait before the second try; each later wait is three
	// times the one before (default 15 s: 15 s, 45 s, 2m15s, 6m45s, about
	// ten minutes in all over five tries).
	Backoff time.Duration
	// Timeout bounds one try (default 10 s).
	Timeout time.Duration
	// Workers is how many deliveries are made at once (default 8).
	Workers int
	// Mail sends alerts' emails; nil: emails fail, saying how to set it.
	Mail *Mailer
	// Client makes the requests (default: one with Timeout).
	Client *http.Client
	Logger *slog.Logger
}

// Deliverer is the webhook and email delivery of one metrics node.
type Deliverer struct {
	cfg   Config
	st    *store.Store
	log   *slog.Logger
	ready atomic.Bool
}

// New validates cfg and returns a deliverer.
func New(cfg Config, st *store.Store) (*Deliverer, error) {
	if st == nil {
		return nil, errors.New("webhooks: a store is required")
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Deliverer{cfg: cfg, st: st, log: cfg.Logger.With("role", "webhooks")}, nil
}

// Ready reports whether both consumers run.
func (d *Deliverer) Ready() bool { return d.ready.Load() }

// Backoff is how long a delivery waits after its try number try (1 is
// the first) failed.
func (d *Deliverer) Backoff(try int) time.Duration {
	delay := d.cfg.Backoff
	for i := 1; i < try && delay < 24*time.Hour; i++ {
		delay *= 3
	}
	return delay
}

// Run dispatches and delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	var dispatch, deliver jetstream.Consumer
	// The consumers are made once the streams answer: in a cluster, a
	// node may start before the bus has a quorum.
	for {
		var err error
		dispatch, err = d.st.JS.CreateOrUpdateConsumer(ctx, skiff.StreamEvents, jetstream.ConsumerConfig{
			Durable: dispatchConsumer, FilterSubject: "events.>", AckPolicy: jetstream.AckExplicitPolicy,
			// A new consumer starts with the events of now on, not with
			// the history of 90 days.
			DeliverPolicy: jetstream.DeliverNewPolicy, AckWait: 30 * time.Second, MaxAckPending: 64,
		})
		if err == nil {
			deliver, err = d.st.JS.CreateOrUpdateConsumer(ctx, skiff.StreamDeliveries, jetstream.ConsumerConfig{
				Durable: deliverConsumer, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1,
				AckWait: d.cfg.Timeout + d.cfg.Mail.timeout() + 10*time.Second, MaxAckPending: d.cfg.Workers * 4,
			})
		}
		if err == nil {
			break
		}
		d.log.Warn("create consumers", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	cc, err := dispatch.Consume(func(msg jetstream.Msg) { d.dispatch(ctx, msg) })
	if err != nil {
		return fmt.Errorf("webhooks: consume events: %w", err)
	}
	defer cc.Stop()
	sem := make(chan struct{}, d.cfg.Workers)
	dc, err := deliver.Consume(func(msg jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.deliver(ctx, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("webhooks: consume deliveries: %w", err)
	}
	defer dc.Stop()
	d.ready.Store(true)
	d.log.Info("delivering webhooks")
	<-ctx.Done()
	d.ready.Store(false)
	return nil
}

func (m *Mailer) timeout() time.Duration {
	if m == nil || m.Timeout <= 0 {
		return 30 * time.Second
	}
	return m.Timeout
}

// dispatch turns one event into a delivery job per target.
func (d *Deliverer) dispatch(ctx context.Context, msg jetstream.Msg) {
	var ev skiff.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		d.log.Warn("unreadable event", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	jobs, err := d.jobs(ctx, ev)
	if err == nil {
		for target, job := range jobs {
			data, _ := json.Marshal(job)
			id := strconv.FormatUint(md.Sequence.Stream, 10) + "-" + target
			if _, err = d.st.JS.Publish(ctx, skiff.DeliverySubject(target), data, jetstream.WithMsgID(id)); err != nil {
				break
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("dispatch event", "app", ev.App, "type", ev.Type, "err", err)
		}
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

// jobs are the deliveries of ev, by target: webhook keys, and "email"
// for an alert's emails.
func (d *Deliverer) jobs(ctx context.Context, ev skiff.Event) (map[string]skiff.DeliveryJob, error) {
	hooks, err := d.st.Webhooks.Values(ctx, skiff.PlatformScope+".*")
	if err != nil {
		return nil, err
	}
	if ev.App != "" {
		own, err := d.st.Webhooks.Values(ctx, ev.App+".*")
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, own...)
	}
	jobs := map[string]skiff.DeliveryJob{}
	for _, h := range hooks {
		if skiff.MatchEvent(h.Events, ev.Type) {
			jobs[h.Key()] = skiff.DeliveryJob{Webhook: h.Key(), Event: ev}
		}
	}
	if ev.Alert != nil {
		rule, _, err := d.st.AlertRules.Get(ctx, ev.Alert.Rule)
		switch {
		case errors.Is(err, skiff.ErrNotFound): // the rule was removed: nobody to mail
		case err != nil:
			return nil, err
		case len(rule.Emails) > 0 && d.cfg.Mail == nil:
			d.log.Warn("alert not emailed: no SMTP relay; start skiff server with --smtp-addr and --smtp-from",
				"rule", rule.Key(), "emails", rule.Emails)
		case len(rule.Emails) > 0:
			jobs["email"] = skiff.DeliveryJob{Emails: rule.Emails, Event: ev}
		}
	}
	return jobs, nil
}

// deliver makes one try of one job, and acks it, or has it tried again
// later, or gives it up.
func (d *Deliverer) deliver(ctx context.Context, msg jetstream.Msg) {
	var job skiff.DeliveryJob
	md, err := msg.Metadata()
	if err == nil {
		err = json.Unmarshal(msg.Data(), &job)
	}
	if err != nil {
		d.log.Warn("unreadable delivery", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	try := int(md.NumDelivered)
	res := skiff.DeliveryResult{ID: strconv.FormatUint(md.Sequence.Stream, 10), Event: job.Event.Type,
		EventTime: job.Event.Time, Attempts: try}
	var hook skiff.Webhook
	if job.Webhook != "" {
		hook, _, err = d.st.Webhooks.Get(ctx, job.Webhook)
		if errors.Is(err, skiff.ErrNotFound) {
			_ = msg.Term() // removed meanwhile
			return
		}
		if err == nil {
			res.Status, err = d.post(ctx, hook, job.Event)
		}
	} else {
		subject, body := mailOf(job.Event)
		err = d.cfg.Mail.Send(ctx, job.Emails, subject, body)
	}
	res.Time = time.Now().UTC()
	log := d.log.With("target", job.Webhook, "event", job.Event.Type, "app", job.Event.App, "try", try)
	switch {
	case err == nil:
		res.State = skiff.DeliveryDelivered
		_ = msg.Ack()
		log.Debug("delivered", "status", res.Status)
	case ctx.Err() != nil:
		return // shutting down: another node, or this one again, tries it
	case try < d.cfg.Tries:
		res.State, res.Error = skiff.DeliveryRetrying, err.Error()
		wait := d.Backoff(try)
		_ = msg.NakWithDelay(wait)
		log.Info("delivery failed; trying again", "in", wait, "err", err)
	default:
		res.State, res.Error = skiff.DeliveryFailed, err.Error()
		_ = msg.Term()
		log.Warn("delivery given up", "tries", try, "err", err)
	}
	if job.Webhook != "" {
		d.record(ctx, job.Webhook, res)
	}
}

// post sends ev to hook, signed, and returns the answer's status.
func (d *Deliverer) post(ctx context.Context, hook skiff.Webhook, ev skiff.Event) (int, error) {
	secret, err := d.st.Unseal(hook.SecretSealed)
	if err != nil {
		return 0, fmt.Errorf("open the webhook's secret: %w", err)
	}
	body, err := Body(hook.Format, ev)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Skiff-Webhooks/1")
	req.Header.Set("Skiff-Event", ev.Type)
	req.Header.Set(SignatureHeader, Sign(secret, time.Now(), body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// record keeps res as the webhook's newest delivery, in place of an
// earlier try of the same delivery.
func (d *Deliverer) record(ctx context.Context, key string, res skiff.DeliveryResult) {
	ctx = context.WithoutCancel(ctx)
	_, err := d.st.Deliveries.Upsert(ctx, key, func(s *skiff.WebhookStatus) error {
		out := []skiff.DeliveryResult{res}
		for _, r := range s.Deliveries {
			if r.ID != res.ID && len(out) < skiff.MaxDeliveriesKept {
				out = append(out, r)
			}
		}
		s.Deliveries = out
		return nil
	})
	if err != nil {
		d.log.Warn("record delivery", "webhook", key, "err", err)
	}
}
