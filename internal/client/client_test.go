package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiff-paas/skiff/internal/skiff"
)

func TestDeployStreamsLinesThenTheResult(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/gzip" {
			w.WriteHeader(400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintf(w, `{"type":"line","line":"got %d bytes"}`+"\n", len(body))
		switch r.URL.Query().Get("description") {
		case "fail":
			fmt.Fprintln(w, `{"type":"error","error":"web.1 crashed","code":"failed","hint":"look at the logs"}`)
		case "cut":
		default:
			fmt.Fprintln(w, `{"type":"result","release":4,"status":"succeeded","url":"http://a.test"}`)
		}
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "tok")
	var lines []string
	res, err := c.Deploy(context.Background(), "a", strings.NewReader("12345"), "", func(l string) { lines = append(lines, l) })
	if err != nil || res.Release != 4 || res.URL != "http://a.test" || len(lines) != 1 || lines[0] != "got 5 bytes" {
		t.Fatalf("deploy = %+v, %v, lines %q", res, err, lines)
	}
	_, err = c.Deploy(context.Background(), "a", strings.NewReader("x"), "fail", nil)
	var e *skiff.Error
	if !errors.As(err, &e) || e.Kind != skiff.KindFailed || e.Message != "web.1 crashed" || e.Hint != "look at the logs" {
		t.Fatalf("failed deploy: %#v", err)
	}
	_, err = c.Deploy(context.Background(), "a", strings.NewReader("x"), "cut", nil)
	if skiff.KindOf(err) != skiff.KindUnavailable {
		t.Fatalf("cut stream: %v", err)
	}
	// An error of the upload's own making is returned as it is.
	pr, pw := io.Pipe()
	pw.CloseWithError(errors.New("archive broke"))
	_, err = c.Deploy(context.Background(), "a", pr, "", nil)
	if err == nil || !strings.Contains(err.Error(), "archive broke") || strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("broken upload: %v", err)
	}
}

func TestErrorsKeepTheirKind(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/apps/json":
			w.WriteHeader(404)
			fmt.Fprintln(w, `{"error":"no app named json","code":"not_found","hint":"skiff apps"}`)
		default:
			w.WriteHeader(502)
			fmt.Fprintln(w, "bad gateway")
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	_, err := c.App(context.Background(), "json")
	var e *skiff.Error
	if !errors.As(err, &e) || e.Kind != skiff.KindNotFound || e.Hint != "skiff apps" {
		t.Fatalf("json error: %#v", err)
	}
	_, err = c.App(context.Background(), "other")
	if !errors.As(err, &e) || e.Kind != skiff.KindInternal || !strings.Contains(e.Message, "bad gateway") {
		t.Fatalf("plain error: %#v", err)
	}
}
