package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestAddonJobStreamsLinesThenTheResult(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"type":"line","line":"-----> Dumping postgres-1"}`)
		switch r.URL.Path {
		case "/v1/apps/shop/backups":
			fmt.Fprintln(w, `{"type":"result","backup":{"id":"b004","app":"shop","addon":"postgres-1","state":"done","size":10}}`)
		case "/v1/apps/shop/backups/b004/verify":
			fmt.Fprintln(w, `{"type":"error","error":"the scratch server did not start","code":"unavailable","hint":"try again"}`)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	var lines []string
	res, err := c.CaptureBackup(context.Background(), "shop", "", func(l string) { lines = append(lines, l) })
	if err != nil || res.Backup == nil || res.Backup.ID != "b004" || len(lines) != 1 {
		t.Fatalf("capture = %+v, %v, lines %q", res, err, lines)
	}
	_, err = c.VerifyBackup(context.Background(), "shop", "b004", nil)
	if skiff.KindOf(err) != skiff.KindUnavailable || !strings.Contains(err.Error(), "scratch server") {
		t.Fatalf("verify: %v", err)
	}
	_, err = c.RestoreBackup(context.Background(), "shop", "b004", skiff.BackupRestoreRequest{Confirm: "shop"}, nil)
	if skiff.KindOf(err) != skiff.KindUnavailable || !strings.Contains(err.Error(), "stopped before its result") {
		t.Fatalf("a stream without its result: %v", err)
	}
}

func TestBackupDownloadChecksItsFile(t *testing.T) {
	const file = "PGDMP a dump"
	sum := sha256.Sum256([]byte(file))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := hex.EncodeToString(sum[:])
		if r.URL.Path == "/v1/backups/shop/bad/download" {
			h = strings.Repeat("0", 64)
		}
		w.Header().Set(skiff.BackupSHA256Header, h)
		io.WriteString(w, file)
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	d, err := c.PullBackup(context.Background(), "shop", "good")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(d)
	d.Close()
	if err != nil || string(data) != file {
		t.Fatalf("good download = %q, %v", data, err)
	}
	d, err = c.PullBackup(context.Background(), "shop", "bad")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(d)
	d.Close()
	if skiff.KindOf(err) != skiff.KindFailed || !strings.Contains(err.Error(), "does not match its SHA-256") {
		t.Fatalf("bad download: %v", err)
	}
}
