package skiff

import (
	"errors"
	"fmt"
	"testing"
)

func TestValidateAppName(t *testing.T) {
	for name, ok := range map[string]bool{
		"shop": true, "my-app-2": true, "abc": true,
		"": false, "ab": false, "Shop": false, "my_app": false, "2shop": false, "shop-": false,
		"a--b": false, "api": false, "abcdefghijklmnopqrstuvwxyz12345": false,
	} {
		err := ValidateAppName(name)
		if (err == nil) != ok {
			t.Errorf("ValidateAppName(%q) = %v, want ok=%v", name, err, ok)
		}
		if err != nil && KindOf(err) != KindInvalid {
			t.Errorf("ValidateAppName(%q) kind %s", name, KindOf(err))
		}
	}
}

func TestValidateConfigKeyRefusesPlatformVars(t *testing.T) {
	for _, k := range []string{"PORT", "DYNO", "SKIFF_APP", "SKIFF_RELEASE", "1A", "A-B", ""} {
		if ValidateConfigKey(k) == nil {
			t.Errorf("ValidateConfigKey(%q) accepted", k)
		}
	}
	for _, k := range []string{"DATABASE_URL", "_x", "a1"} {
		if err := ValidateConfigKey(k); err != nil {
			t.Errorf("ValidateConfigKey(%q) = %v", k, err)
		}
	}
}

func TestNormalizeHostname(t *testing.T) {
	if h, err := NormalizeHostname(" WWW.Example.com. "); err != nil || h != "www.example.com" {
		t.Fatalf("got %q, %v", h, err)
	}
	if h, err := NormalizeHostname("*.Example.com"); err != nil || h != "*.example.com" || DomainKey(h) != "_.example.com" {
		t.Fatalf("wildcard: got %q, %v", h, err)
	}
	for _, h := range []string{"localhost", "http://x.com", "x.com:80", "-a.com", "a..com", "*.com", "a.*.com", "**.x.com", "*"} {
		if _, err := NormalizeHostname(h); err == nil {
			t.Errorf("NormalizeHostname(%q) accepted", h)
		}
	}
}

func TestKinds(t *testing.T) {
	for _, k := range []Kind{KindInvalid, KindUnauthorized, KindForbidden, KindNotFound, KindConflict, KindTooLarge, KindFailed, KindUnavailable, KindInternal} {
		if got := KindOfStatus(k.HTTPStatus()); got != k {
			t.Errorf("KindOfStatus(%d) = %s, want %s", k.HTTPStatus(), got, k)
		}
	}
	wrapped := fmt.Errorf("saving: %w", Errorf(KindConflict, "retry", "app %s changed", "shop"))
	if KindOf(wrapped) != KindConflict || KindOf(fmt.Errorf("x: %w", ErrNotFound)) != KindNotFound || KindOf(errors.New("disk")) != KindInternal {
		t.Fatal("KindOf does not see through wrapping")
	}
}

func TestVersionsAndLogSubjects(t *testing.T) {
	for in, want := range map[string]int{"v3": 3, "3": 3, "V12": 12} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"v0", "x", "-1", ""} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
	app, source, proc, ok := ParseLogSubject(LogSubject("shop", SourceApp, "web.1"))
	if !ok || app != "shop" || source != SourceApp || proc != "web.1" {
		t.Fatalf("log subject round trip: %s %s %s %v", app, source, proc, ok)
	}
	if got := SortedTypes(map[string]int{"worker": 1, "clock": 1, "web": 2}); fmt.Sprint(got) != "[web clock worker]" {
		t.Fatalf("SortedTypes = %v", got)
	}
}
