package backup

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/testkit"
)

// startRedisApp starts a scratch Redis server with keys in databases 0
// and 1, some with a time to live, and returns its URL and client of
// each database.
func startRedisApp(t *testing.T, tools Tools) (string, [2]*redis.Client) {
	t.Helper()
	url, stop, err := tools.ScratchRedis(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	var c [2]*redis.Client
	for db := range c {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = db
		c[db] = redis.NewClient(opt)
		t.Cleanup(func() { c[db].Close() })
	}
	ctx := t.Context()
	p := c[0].Pipeline()
	p.Set(ctx, "plain", "value", 0)
	p.Set(ctx, "session", "abc", time.Hour)
	p.HSet(ctx, "user:1", "name", "Ada", "email", "ada@example.com")
	p.Expire(ctx, "user:1", 30*time.Minute)
	p.RPush(ctx, "queue", "a", "b", "c")
	p.ZAdd(ctx, "scores", redis.Z{Score: 1, Member: "x"}, redis.Z{Score: 2, Member: "y"})
	for i := range 300 {
		p.Set(ctx, fmt.Sprintf("cache:%d", i), strings.Repeat(fmt.Sprint(i), 20), 0)
	}
	p.SAdd(ctx, "tags", "go", "redis")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c[1].Set(ctx, "other", "db1", 2*time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c[1].Set(ctx, "forever", "db1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	return url, c
}

// redisKeys is what startRedisApp's server holds.
var redisKeys = map[string]int64{"db0": 306, "db1": 2}

// captureRedis captures the server at url into a file.
func captureRedis(t *testing.T, tools Tools, url string) (string, map[string]int64) {
	t.Helper()
	var buf bytes.Buffer
	counts, err := tools.CaptureRedis(t.Context(), url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "dump.rdb", buf.Bytes()), counts
}

func TestRedisCaptureRestore(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	url, c := startRedisApp(t, tools)
	ctx := t.Context()
	file, counts := captureRedis(t, tools, url)
	if !maps.Equal(counts, redisKeys) {
		t.Fatalf("captured %v, want %v", counts, redisKeys)
	}

	if err := c[0].FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c[0].Set(ctx, "after", "the capture", 0)
	if err := tools.RestoreRedis(ctx, url, file); err != nil {
		t.Fatal(err)
	}
	if n := c[0].Exists(ctx, "after").Val(); n != 0 {
		t.Error("a key set after the capture survived the restore")
	}
	for db, want := range []int64{306, 2} {
		if n := c[db].DBSize(ctx).Val(); n != want {
			t.Errorf("db%d has %d keys, want %d", db, n, want)
		}
	}
	if v := c[0].Get(ctx, "plain").Val(); v != "value" {
		t.Errorf("plain = %q", v)
	}
	if v := c[0].HGet(ctx, "user:1", "email").Val(); v != "ada@example.com" {
		t.Errorf("user:1 email = %q", v)
	}
	if v := c[0].LRange(ctx, "queue", 0, -1).Val(); strings.Join(v, ",") != "a,b,c" {
		t.Errorf("queue = %q", v)
	}
	if v := c[0].ZScore(ctx, "scores", "y").Val(); v != 2 {
		t.Errorf("score of y = %v", v)
	}
	if v := c[1].Get(ctx, "other").Val(); v != "db1" {
		t.Errorf("db1 other = %q", v)
	}
	for _, tc := range []struct {
		c        *redis.Client
		key      string
		min, max time.Duration
	}{
		{c[0], "session", 59 * time.Minute, time.Hour},
		{c[0], "user:1", 29 * time.Minute, 30 * time.Minute},
		{c[1], "other", 119 * time.Minute, 2 * time.Hour},
		{c[0], "plain", -1, -1},
		{c[1], "forever", -1, -1},
	} {
		if ttl := tc.c.PTTL(ctx, tc.key).Val(); ttl < tc.min || ttl > tc.max {
			t.Errorf("%s has %v to live, want %v to %v", tc.key, ttl, tc.min, tc.max)
		}
	}
}

func TestRestoreRedisBadSnapshotChangesNothing(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	url, c := startRedisApp(t, tools)
	file, _ := captureRedis(t, tools, url)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := writeFile(t, t.TempDir(), "bad.rdb", flipped(good))
	c[0].Set(t.Context(), "after", "the capture", 0)
	err = tools.RestoreRedis(t.Context(), url, bad)
	if err == nil || !strings.Contains(err.Error(), "does not load, the server is unchanged") {
		t.Fatalf("restore of a corrupt snapshot: %v", err)
	}
	t.Log(err)
	if n := c[0].DBSize(t.Context()).Val(); n != 307 {
		t.Errorf("after a failed restore db0 has %d keys, want 307", n)
	}
}

func TestVerifyRedis(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	url, c := startRedisApp(t, tools)
	// A key whose time runs out before the snapshot is verified.
	if err := c[1].Set(t.Context(), "brief", "x", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	file, counts := captureRedis(t, tools, url)
	want := map[string]int64{"db0": 306, "db1": 3}
	if !maps.Equal(counts, want) {
		t.Fatalf("captured %v, want %v", counts, want)
	}
	testkit.Eventually(t, 5*time.Second, "brief to expire", func() bool {
		return c[1].Exists(t.Context(), "brief").Val() == 0
	})
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	more := maps.Clone(counts)
	more["db0"] = 400
	checkVerify(t, tools, skiff.AddonRedis, "2 databases, 309 keys match", []verifyCase{
		{"good", file, counts, ""},
		{"flipped", writeFile(t, dir, "flipped", flipped(good)), counts, "the backup cannot be restored"},
		{"truncated", writeFile(t, dir, "truncated", good[:len(good)/2]), counts, "the backup cannot be restored"},
		{"key count", file, more, "db0 has 306 keys, 400 captured"},
		{"empty", file, nil, "db0 was not captured but has 306 keys"},
	})
}

func TestCaptureRedisFullDisk(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	url, _ := startRedisApp(t, tools)
	counts, err := tools.CaptureRedis(t.Context(), url, &fullDisk{})
	checkDiskFull(t, err)
	if counts != nil {
		t.Errorf("a failed capture returned counts %v", counts)
	}
}

func TestCaptureRedisWrongPassword(t *testing.T) {
	t.Parallel()
	tools := testTools(t)
	url, _ := startRedisApp(t, tools)
	bad := strings.Replace(url, "default:", "default:x", 1)
	_, err := tools.CaptureRedis(t.Context(), bad, &bytes.Buffer{})
	if err == nil {
		t.Fatal("capture with a wrong password succeeded")
	}
	t.Log(err)
	if strings.Contains(err.Error(), strings.Split(strings.Split(bad, "default:")[1], "@")[0]) {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestVerifyUnknownType(t *testing.T) {
	if _, err := (Tools{}).Verify(t.Context(), "mysql", "x", nil); err == nil {
		t.Fatal("Verify of a mysql backup succeeded")
	}
}
