package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestSessions(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	s := newSessions(time.Hour, 3, clock.now)

	a := s.create("tok-a", skiff.WhoAmI{User: "ann", Admin: true})
	b := s.create("tok-b", skiff.WhoAmI{User: "bob"})
	if a.ID == b.ID || a.CSRF == b.CSRF || a.ID == a.CSRF || len(a.ID) < 26 || len(a.CSRF) < 26 {
		t.Fatalf("IDs and CSRF tokens must be long, random and distinct: %+v %+v", a, b)
	}
	got, ok := s.get(a.ID)
	if !ok || got.Token != "tok-a" || got.User != "ann" || !got.Admin || got.CSRF != a.CSRF {
		t.Fatalf("get(a) = %+v, %v", got, ok)
	}
	if _, ok := s.get("not-" + a.ID); ok {
		t.Fatal("an unknown ID found a session")
	}

	// A flash shows once.
	s.flash(b.ID, flash{Message: "Scaled web to 2."})
	if got, _ := s.get(b.ID); got.Flash == nil || got.Flash.Message != "Scaled web to 2." {
		t.Fatalf("flash = %+v", got.Flash)
	}
	if got, _ := s.get(b.ID); got.Flash != nil {
		t.Fatalf("flash shown twice: %+v", got.Flash)
	}

	// Expiry: a session lives for the TTL, not a moment more.
	clock.t = clock.t.Add(59 * time.Minute)
	if _, ok := s.get(a.ID); !ok {
		t.Fatal("session ended before its TTL")
	}
	clock.t = clock.t.Add(time.Minute)
	if _, ok := s.get(a.ID); ok {
		t.Fatal("session outlived its TTL")
	}

	// Bounded: past the maximum, expired sessions go first, then the one
	// closest to expiring.
	clock.t = clock.t.Add(2 * time.Hour)
	c1 := s.create("1", skiff.WhoAmI{User: "c1"})
	clock.t = clock.t.Add(time.Minute)
	c2 := s.create("2", skiff.WhoAmI{User: "c2"})
	c3 := s.create("3", skiff.WhoAmI{User: "c3"}) // b expired: dropped, no live one lost
	if _, ok := s.get(c1.ID); !ok {
		t.Fatal("a live session was dropped while an expired one could go")
	}
	c4 := s.create("4", skiff.WhoAmI{User: "c4"})
	if _, ok := s.get(c1.ID); ok {
		t.Fatal("the oldest session survived past the maximum")
	}
	for _, c := range []session{c2, c3, c4} {
		if _, ok := s.get(c.ID); !ok {
			t.Fatalf("session %s dropped", c.User)
		}
	}

	s.delete(c2.ID)
	if _, ok := s.get(c2.ID); ok {
		t.Fatal("deleted session still there")
	}
}

func TestValidCSRF(t *testing.T) {
	for _, c := range []struct {
		expected, got string
		ok            bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"abc", "", false},
		{"", "", false}, // no token issued: nothing passes
	} {
		if validCSRF(c.expected, c.got) != c.ok {
			t.Errorf("validCSRF(%q, %q) = %v", c.expected, c.got, !c.ok)
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, c := range []struct {
		name   string
		header map[string]string
		secure bool
	}{
		{"plain http", nil, false},
		{"behind an https proxy", map[string]string{"X-Forwarded-Proto": "https"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/dashboard/", nil)
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			setCookie(w, r, sessionCookie, "id", 60)
			cookie := w.Result().Cookies()[0]
			if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/dashboard/" || cookie.Secure != c.secure {
				t.Fatalf("cookie %s", w.Header().Get("Set-Cookie"))
			}
			if !strings.Contains(w.Header().Get("Set-Cookie"), "SameSite=Strict") {
				t.Fatalf("Set-Cookie %q", w.Header().Get("Set-Cookie"))
			}
		})
	}
}
