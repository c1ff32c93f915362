package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// fakeAddons stands in for the addons role: it takes every job, says one
// line of progress, and ends it with what result returns. The requests
// it took come out of the returned channel.
func fakeAddons(t *testing.T, nc *nats.Conn, result func(skiff.AddonRequest) skiff.AddonResult) <-chan skiff.AddonRequest {
	t.Helper()
	reqs := make(chan skiff.AddonRequest, 32)
	sub, err := nc.QueueSubscribe(skiff.SubjectAddons, skiff.QueueAddons, func(m *nats.Msg) {
		var req skiff.AddonRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("undecodable request %q", m.Data)
			return
		}
		reqs <- req
		accepted, _ := json.Marshal(skiff.AddonAccepted{Node: "n1"})
		m.Respond(accepted)
		nc.Publish(skiff.AddonOutputSubject(req.ID), []byte("-----> "+req.Op+" "+req.Addon))
		done, _ := json.Marshal(result(req))
		nc.Publish(skiff.AddonDoneSubject(req.ID), done)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return reqs
}

func took(t *testing.T, reqs <-chan skiff.AddonRequest) skiff.AddonRequest {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the addons role got no request")
	}
	return skiff.AddonRequest{}
}

// noRequest fails if the addons role got a request: what the API refuses
// never reaches it.
func noRequest(t *testing.T, reqs <-chan skiff.AddonRequest) {
	t.Helper()
	select {
	case r := <-reqs:
		t.Fatalf("the addons role got %+v", r)
	default:
	}
}

func wantErr(t *testing.T, err error, kind skiff.Kind, msg, hint string) {
	t.Helper()
	var e *skiff.Error
	if !errors.As(err, &e) || e.Kind != kind || !strings.Contains(e.Message, msg) || !strings.Contains(e.Hint, hint) {
		t.Fatalf("error %#v; want %s with %q and a hint with %q", err, kind, msg, hint)
	}
}

func putAddon(t *testing.T, e *env, ad skiff.Addon) {
	t.Helper()
	if ad.State == "" {
		ad.State = skiff.AddonReady
	}
	if ad.Plan == "" {
		ad.Plan = skiff.AddonPlans[ad.Type][0]
	}
	ad.CreatedAt = time.Now().UTC()
	if _, err := e.st.Addons.Put(context.Background(), ad.Key(), ad); err != nil {
		t.Fatal(err)
	}
}

func TestAddonJobs(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	c := client.New(e.url, e.token)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)

	// Without the addons role: an ordinary error, not a stream.
	_, err := c.CreateAddon(ctx, "shop", skiff.AddonCreateRequest{Type: "postgres"}, nil)
	wantErr(t, err, skiff.KindUnavailable, "no node of the addons role", "addons role")

	sealed := []byte("sealed-secret-bytes")
	reqs := fakeAddons(t, e.st.NC, func(req skiff.AddonRequest) skiff.AddonResult {
		switch req.Op {
		case skiff.AddonOpCreate:
			ad := *req.Spec
			ad.Name, ad.ConfigVar, ad.State, ad.Password = "postgres-1", "DATABASE_URL", skiff.AddonReady, sealed
			return skiff.AddonResult{Addon: &ad}
		case skiff.AddonOpRotate:
			return skiff.AddonResult{Error: "the server is busy", Code: skiff.KindConflict, Hint: "try again"}
		}
		return skiff.AddonResult{Addon: &skiff.Addon{Name: req.Addon, App: req.App, State: skiff.AddonDestroying}}
	})

	// What the API can check, it checks before the role sees it.
	for _, tc := range []struct {
		req        skiff.AddonCreateRequest
		msg, hint  string
		statusKind skiff.Kind
	}{
		{skiff.AddonCreateRequest{Type: "mysql"}, `unknown add-on type "mysql"`, "postgres and redis", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "redis", Plan: "shared"}, `redis has no plan "shared"`, "dedicated", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "postgres", Plan: "huge"}, `postgres has no plan "huge"`, "shared and dedicated", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "postgres", MaxMemory: 64 << 20}, "settings of Redis", "--max-memory", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "redis", Eviction: "sometimes"}, `unknown eviction policy "sometimes"`, "allkeys-lru", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "postgres", Name: "Bad_Name"}, "invalid add-on name", "postgres-1", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "postgres", As: "PORT"}, "set by the platform", "PORT", skiff.KindInvalid},
		{skiff.AddonCreateRequest{Type: "postgres", Plan: "dedicated", HA: true}, "is for redis add-ons", "skiff backups schedule", skiff.KindInvalid},
	} {
		_, err := c.CreateAddon(ctx, "shop", tc.req, nil)
		wantErr(t, err, tc.statusKind, tc.msg, tc.hint)
	}
	_, err = c.CreateAddon(ctx, "nope", skiff.AddonCreateRequest{Type: "postgres"}, nil)
	wantErr(t, err, skiff.KindNotFound, "no app named nope", "skiff apps")
	e.expect("POST", "/v1/apps/shop/addons", map[string]any{"type": "redis", "max_memory": "lots"}, 400, skiff.KindInvalid, `invalid size "lots"`)
	noRequest(t, reqs)

	// A size may be a string with a unit.
	var lines []string
	if _, err := c.CreateAddon(ctx, "shop", skiff.AddonCreateRequest{Type: "redis", MaxMemory: 0, Eviction: "allkeys-lru"}, nil); err != nil {
		t.Fatal(err)
	}
	took(t, reqs)
	if code, _ := e.do("POST", "/v1/apps/shop/addons", map[string]any{"type": "redis", "max_memory": "64mb", "no_persistence": true}, nil); code != 200 {
		t.Fatalf("create redis with max_memory 64mb = %d", code)
	}
	if req := took(t, reqs); req.Spec == nil || req.Spec.MaxMemory != 64<<20 || !req.Spec.NoPersistence || req.Spec.Plan != skiff.PlanDedicated {
		t.Fatalf("redis spec = %+v", req.Spec)
	}

	// A job's lines, then its result, which never holds the password but
	// the app's URL.
	e.st.UpdateConfig(ctx, "shop", func(v map[string]string) error {
		v["DATABASE_URL"] = "postgres://u:pw@10.0.0.1:5432/shop"
		return nil
	})
	res, err := c.CreateAddon(ctx, "shop", skiff.AddonCreateRequest{Type: "postgres", As: "DATABASE_URL"}, func(l string) { lines = append(lines, l) })
	if err != nil || res.Addon == nil || res.Addon.Name != "postgres-1" || res.Addon.URL != "postgres://u:pw@10.0.0.1:5432/shop" ||
		len(lines) != 1 || lines[0] != "-----> create " {
		t.Fatalf("create = %+v, %v, lines %q", res, err, lines)
	}
	req := took(t, reqs)
	if req.Op != skiff.AddonOpCreate || req.App != "shop" || req.Actor != "admin" || req.ID == "" || req.Spec == nil ||
		req.Spec.Type != "postgres" || req.Spec.Plan != skiff.PlanShared || req.Spec.ConfigVar != "DATABASE_URL" {
		t.Fatalf("create request = %+v, spec %+v", req, req.Spec)
	}

	// The role's records, as the API shows them.
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL", Addr: "10.0.0.1:5432",
		Service: "pg-shared", Password: sealed})
	e.st.ServiceStat.Put(ctx, "pg-shared", skiff.ServiceStatus{Name: "pg-shared", Node: "n2", State: skiff.ServiceUp})
	for _, path := range []string{"/v1/apps/shop/addons", "/v1/apps/shop/addons/postgres-1"} {
		raw := e.raw("GET", path)
		if strings.Contains(raw, "password") || strings.Contains(raw, "c2VhbGVk") {
			t.Fatalf("GET %s shows the password: %s", path, raw)
		}
	}
	v, err := c.Addon(ctx, "shop", "postgres-1")
	if err != nil || v.URL != "postgres://u:pw@10.0.0.1:5432/shop" || v.Node != "n2" || v.State != skiff.AddonReady || v.Plan != "shared" {
		t.Fatalf("addon = %+v, %v", v, err)
	}
	e.expect("POST", "/v1/apps/shop/addons", skiff.AddonCreateRequest{Type: "postgres", Name: "postgres-1"}, 409, skiff.KindConflict, "already has an add-on named postgres-1")
	e.expect("GET", "/v1/apps/shop/addons/ghost", nil, 404, skiff.KindNotFound, "shop has no add-on named ghost")

	// Destroy wants the app's name.
	for _, confirm := range []string{"", "shoq"} {
		_, err = c.DestroyAddon(ctx, "shop", "postgres-1", confirm, nil)
		wantErr(t, err, skiff.KindInvalid, "deletes its data for good", "skiff addons destroy postgres-1 -a shop --confirm shop")
	}
	noRequest(t, reqs)
	if _, err := c.DestroyAddon(ctx, "shop", "postgres-1", "shop", nil); err != nil {
		t.Fatal(err)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpDestroy || req.Addon != "postgres-1" || req.Confirm != "shop" {
		t.Fatalf("destroy request = %+v", req)
	}

	// A job that fails carries the role's kind and hint.
	_, err = c.RotateCredentials(ctx, "shop", "postgres-1", nil)
	wantErr(t, err, skiff.KindConflict, "the server is busy", "try again")
	if req := took(t, reqs); req.Op != skiff.AddonOpRotate || req.Addon != "postgres-1" {
		t.Fatalf("rotate request = %+v", req)
	}

	// Another user's app is out of reach.
	var ada skiff.UserToken
	e.do("POST", "/v1/users", skiff.UserRequest{Name: "ada"}, &ada)
	_, err = client.New(e.url, ada.Token).Addons(ctx, "shop")
	wantErr(t, err, skiff.KindForbidden, "belongs to another user", "owner")
}

// raw answers a request's body as it is.
func (e *env) raw(method, path string) string {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

func TestBackupSchedule(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	c := client.New(e.url, e.token)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL"})
	v, err := c.SetBackupSchedule(ctx, "shop", "postgres-1", "2:30")
	if err != nil || v.BackupAt != "02:30" {
		t.Fatalf("schedule = %+v, %v", v, err)
	}
	if ad, _, _ := e.st.Addons.Get(ctx, skiff.AddonKey("shop", "postgres-1")); ad.BackupAt != "02:30" {
		t.Fatalf("stored backup_at = %q", ad.BackupAt)
	}
	for _, at := range []string{"25:00", "2am", ""} {
		e.expect("PUT", "/v1/apps/shop/addons/postgres-1/backup-schedule", skiff.BackupScheduleRequest{At: at}, 400, skiff.KindInvalid, "invalid backup time")
	}
	e.expect("PUT", "/v1/apps/shop/addons/ghost/backup-schedule", skiff.BackupScheduleRequest{At: "01:00"}, 404, skiff.KindNotFound, "no add-on named ghost")
	if v, err := c.SetBackupSchedule(ctx, "shop", "postgres-1", ""); err != nil || v.BackupAt != "" {
		t.Fatalf("unschedule = %+v, %v", v, err)
	}
	if ad, _, _ := e.st.Addons.Get(ctx, skiff.AddonKey("shop", "postgres-1")); ad.BackupAt != "" {
		t.Fatalf("stored backup_at after unschedule = %q", ad.BackupAt)
	}
}

// backupFile stores a done backup of app with content as its file.
func backupFile(t *testing.T, e *env, b skiff.Backup, content string) skiff.Backup {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(content))
	if b.SHA256 == "" {
		b.SHA256 = hex.EncodeToString(sum[:])
	}
	b.Size = int64(len(content))
	if b.State == "" {
		b.State = skiff.BackupDone
		b.FinishedAt = b.StartedAt.Add(time.Second)
	}
	if b.State == skiff.BackupDone {
		if _, err := e.st.BackupFiles.Put(ctx, jetstream.ObjectMeta{Name: b.Key()}, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.Backups.Put(ctx, b.Key(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackups(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	c := client.New(e.url, e.token)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "blog"}, nil)
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", ConfigVar: "DATABASE_URL"})
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "blog", Type: "postgres", ConfigVar: "DATABASE_URL"})
	putAddon(t, e, skiff.Addon{Name: "redis-1", App: "blog", Type: "redis", ConfigVar: "REDIS_URL"})
	now := time.Now().UTC().Truncate(time.Second)
	pg := skiff.Backup{App: "shop", Addon: "postgres-1", Type: "postgres", Format: "pg_dump-custom", Kind: skiff.BackupManual}
	b1, b2, b3 := pg, pg, pg
	b1.ID, b1.StartedAt = "b001", now.Add(-2*time.Hour)
	b2.ID, b2.StartedAt = "b002", now.Add(-time.Hour)
	b3.ID, b3.StartedAt, b3.State = "b003", now, skiff.BackupRunning
	backupFile(t, e, b1, "the first dump")
	backupFile(t, e, b2, "the second dump, longer")
	backupFile(t, e, b3, "")
	bad := pg
	bad.ID, bad.StartedAt, bad.SHA256 = "b000", now.Add(-3*time.Hour), strings.Repeat("0", 64)
	backupFile(t, e, bad, "a file whose checksum is wrong")

	list, err := c.Backups(ctx, "shop")
	if err != nil || len(list) != 4 || list[0].ID != "b003" || list[1].ID != "b002" || list[3].ID != "b000" {
		t.Fatalf("backups = %+v, %v", list, err)
	}
	if b, err := c.Backup(ctx, "shop", "b002"); err != nil || b.Size != 23 {
		t.Fatalf("backup b002 = %+v, %v", b, err)
	}
	e.expect("GET", "/v1/apps/shop/backups/b999", nil, 404, skiff.KindNotFound, "shop has no backup b999")
	e.expect("GET", "/v1/apps/shop/backups/B_1", nil, 400, skiff.KindInvalid, "invalid backup ID")

	// Download: the whole file with its size and checksum; a running
	// backup has none; a file that does not match its checksum is an
	// error at its end.
	d, err := c.DownloadBackup(ctx, "shop", "b002")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(d)
	d.Close()
	if err != nil || string(data) != "the second dump, longer" || d.Size != 23 || d.SHA256 != b2Sum("the second dump, longer") {
		t.Fatalf("download = %q (size %d, sha %s), %v", data, d.Size, d.SHA256, err)
	}
	req, _ := http.NewRequest("GET", e.url+"/v1/apps/shop/backups/b002/download", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Skiff-SHA256") != b2Sum("the second dump, longer") || resp.ContentLength != 23 ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "shop-b002.dump") {
		t.Fatalf("download headers: %v", resp.Header)
	}
	e.expect("GET", "/v1/apps/shop/backups/b003/download", nil, 409, skiff.KindConflict, "backup b003 is running")
	d, err = c.DownloadBackup(ctx, "shop", "b000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(d)
	d.Close()
	wantErr(t, err, skiff.KindFailed, "does not match its SHA-256", "download it again")

	reqs := fakeAddons(t, e.st.NC, func(req skiff.AddonRequest) skiff.AddonResult {
		b := skiff.Backup{ID: "b004", App: req.App, Addon: req.Addon, State: skiff.BackupDone}
		return skiff.AddonResult{Backup: &b}
	})

	// Capture: the app's only add-on, or the one named.
	res, err := c.CaptureBackup(ctx, "shop", "", nil)
	if err != nil || res.Backup == nil || res.Backup.ID != "b004" {
		t.Fatalf("capture = %+v, %v", res, err)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpCapture || req.Addon != "postgres-1" || req.Kind != skiff.BackupManual || req.App != "shop" {
		t.Fatalf("capture request = %+v", req)
	}
	_, err = c.CaptureBackup(ctx, "blog", "", nil)
	wantErr(t, err, skiff.KindInvalid, "blog has 2 add-ons", "postgres-1, redis-1")
	if _, err := c.CaptureBackup(ctx, "blog", "redis-1", nil); err != nil {
		t.Fatal(err)
	}
	if req := took(t, reqs); req.Addon != "redis-1" {
		t.Fatalf("capture of redis-1 = %+v", req)
	}

	// Restore wants the app's name, and a done backup of the same type.
	_, err = c.RestoreBackup(ctx, "shop", "latest", skiff.BackupRestoreRequest{Confirm: "blog"}, nil)
	wantErr(t, err, skiff.KindInvalid, "replaces the data of postgres-1", "skiff backups restore latest -a shop --confirm shop")
	_, err = c.RestoreBackup(ctx, "shop", "b003", skiff.BackupRestoreRequest{Confirm: "shop"}, nil)
	wantErr(t, err, skiff.KindConflict, "backup b003 is running", "skiff backups -a shop")
	_, err = c.RestoreBackup(ctx, "blog", "b002", skiff.BackupRestoreRequest{Addon: "redis-1", FromApp: "shop", Confirm: "blog"}, nil)
	wantErr(t, err, skiff.KindInvalid, "backup b002 is of postgres, and redis-1 is redis", "--addon")
	noRequest(t, reqs)
	if _, err := c.RestoreBackup(ctx, "shop", "latest", skiff.BackupRestoreRequest{Confirm: "shop"}, nil); err != nil {
		t.Fatal(err)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpRestore || req.Backup != "b002" || req.Addon != "postgres-1" || req.Confirm != "shop" {
		t.Fatalf("restore request = %+v", req)
	}
	// Another app's backup is named APP.ID, if the token may use it.
	if _, err := c.RestoreBackup(ctx, "blog", "b001", skiff.BackupRestoreRequest{Addon: "postgres-1", FromApp: "shop", Confirm: "blog"}, nil); err != nil {
		t.Fatal(err)
	}
	if req := took(t, reqs); req.App != "blog" || req.Backup != "shop.b001" || req.Addon != "postgres-1" {
		t.Fatalf("restore from shop = %+v", req)
	}
	var ada skiff.UserToken
	e.do("POST", "/v1/users", skiff.UserRequest{Name: "ada"}, &ada)
	ac := client.New(e.url, ada.Token)
	ac.CreateApp(ctx, "lab")
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "lab", Type: "postgres", ConfigVar: "DATABASE_URL"})
	_, err = ac.RestoreBackup(ctx, "lab", "latest", skiff.BackupRestoreRequest{FromApp: "shop", Confirm: "lab"}, nil)
	wantErr(t, err, skiff.KindForbidden, "app shop belongs to another user", "owner")
	noRequest(t, reqs)

	// Verify.
	if _, err := c.VerifyBackup(ctx, "shop", "b001", nil); err != nil {
		t.Fatal(err)
	}
	if req := took(t, reqs); req.Op != skiff.AddonOpVerify || req.Backup != "b001" || req.Addon != "postgres-1" {
		t.Fatalf("verify request = %+v", req)
	}
}

func b2Sum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A backups:read token lists and downloads every app's backups, and does
// nothing else.
func TestBackupsReadToken(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	admin := e.token
	var ada skiff.UserToken
	e.do("POST", "/v1/users", skiff.UserRequest{Name: "ada"}, &ada)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)
	client.New(e.url, ada.Token).CreateApp(ctx, "lab")
	now := time.Now().UTC().Truncate(time.Second)
	backupFile(t, e, skiff.Backup{ID: "b001", App: "shop", Addon: "postgres-1", Type: "postgres", StartedAt: now.Add(-48 * time.Hour)}, "old")
	backupFile(t, e, skiff.Backup{ID: "b001", App: "lab", Addon: "redis-1", Type: "redis", StartedAt: now}, "new")
	backupFile(t, e, skiff.Backup{ID: "b002", App: "lab", Addon: "redis-1", Type: "redis", StartedAt: now, State: skiff.BackupFailed}, "")

	e.token = ada.Token
	e.expect("POST", "/v1/tokens", skiff.TokenRequest{Scope: skiff.ScopeBackupsRead}, 403, skiff.KindForbidden, "only admins")
	e.expect("GET", "/v1/backups", nil, 403, skiff.KindForbidden, "only admins and backups:read tokens")
	e.token = admin
	e.expect("POST", "/v1/tokens", skiff.TokenRequest{Scope: "everything"}, 400, skiff.KindInvalid, `unknown token scope "everything"`)
	var tok skiff.ScopedToken
	if code, _ := e.do("POST", "/v1/tokens", skiff.TokenRequest{Scope: skiff.ScopeBackupsRead}, &tok); code != 201 || tok.Token == "" || tok.Scope != skiff.ScopeBackupsRead {
		t.Fatalf("create token = %d %+v", code, tok)
	}

	e.token = tok.Token
	var who skiff.WhoAmI
	if code, _ := e.do("GET", "/v1/whoami", nil, &who); code != 200 || who.Scope != skiff.ScopeBackupsRead || who.Admin {
		t.Fatalf("whoami = %d %+v", code, who)
	}
	for _, r := range [][2]string{
		{"GET", "/v1/apps"}, {"POST", "/v1/apps"}, {"GET", "/v1/apps/shop/backups"}, {"GET", "/v1/apps/shop/backups/b001/download"},
		{"POST", "/v1/apps/shop/backups"}, {"POST", "/v1/tokens"}, {"POST", "/v1/users"}, {"GET", "/metrics"}, {"GET", "/v1/admin/export"},
		{"DELETE", "/v1/apps/shop"}, {"GET", "/v1/keys"},
	} {
		e.expect(r[0], r[1], nil, 403, skiff.KindForbidden, "this token may only pull backups")
	}
	pc := client.New(e.url, tok.Token)
	all, err := pc.AllBackups(ctx, time.Time{})
	if err != nil || len(all) != 2 || all[0].App != "lab" || all[1].App != "shop" {
		t.Fatalf("all backups = %+v, %v", all, err)
	}
	recent, err := pc.AllBackups(ctx, now.Add(-time.Hour))
	if err != nil || len(recent) != 1 || recent[0].App != "lab" {
		t.Fatalf("backups since an hour ago = %+v, %v", recent, err)
	}
	e.expect("GET", "/v1/backups?since=yesterday", nil, 400, skiff.KindInvalid, "invalid since")
	d, err := pc.PullBackup(ctx, "shop", "b001")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(d)
	d.Close()
	if err != nil || string(data) != "old" || d.SHA256 != b2Sum("old") {
		t.Fatalf("pull = %q, %v", data, err)
	}
	e.expect("GET", "/v1/backups/lab/b002/download", nil, 409, skiff.KindConflict, "backup b002 is failed")
	e.expect("GET", "/v1/backups/lab/b404/download", nil, 404, skiff.KindNotFound, "lab has no backup b404")
}

func TestTunnel(t *testing.T) {
	ctx := context.Background()
	e := start(t)
	c := client.New(e.url, e.token)
	e.do("POST", "/v1/apps", skiff.CreateAppRequest{Name: "shop"}, nil)

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.Copy(conn, conn)
			}()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closed.Close()
	putAddon(t, e, skiff.Addon{Name: "postgres-1", App: "shop", Type: "postgres", Addr: echo.Addr().String()})
	putAddon(t, e, skiff.Addon{Name: "postgres-2", App: "shop", Type: "postgres", State: skiff.AddonCreating})
	putAddon(t, e, skiff.Addon{Name: "postgres-3", App: "shop", Type: "postgres", Addr: closed.Addr().String()})

	for i := range 2 { // one tunnel after another, each its own connection
		conn, err := c.DialTunnel(ctx, "shop", "postgres-1")
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.Repeat("ping ", 1000*(i+1))
		go conn.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo through the tunnel: %v", err)
		}
		conn.Close()
	}

	_, err = c.DialTunnel(ctx, "shop", "postgres-2")
	wantErr(t, err, skiff.KindConflict, "the add-on is creating", "skiff addons info postgres-2 -a shop")
	_, err = c.DialTunnel(ctx, "shop", "postgres-3")
	wantErr(t, err, skiff.KindUnavailable, "cannot reach postgres-3's server", "restarting")
	_, err = c.DialTunnel(ctx, "shop", "ghost")
	wantErr(t, err, skiff.KindNotFound, "no add-on named ghost", "skiff addons -a shop")
	e.expect("GET", "/v1/apps/shop/addons/postgres-1/tunnel", nil, 400, skiff.KindInvalid, "needs a connection upgraded to skiff-tunnel")
}
