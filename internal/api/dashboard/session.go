package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// Cookies of the dashboard. Both are HttpOnly and SameSite=Strict, and
// Secure when the page came over HTTPS.
const (
	// sessionCookie holds a session's random ID; the session itself (the
	// API token above all) stays on the server.
	sessionCookie = "skiff_session"
	// loginCookie holds the CSRF token of the login form, which has no
	// session yet to keep it in (a double-submit token).
	loginCookie = "skiff_login"
	// csrfField is the name of the CSRF token in every form.
	csrfField = "csrf"
)

// session is one browser logged in with one token.
type session struct {
	ID      string
	Token   string // the API token every action is made with
	User    string
	Admin   bool
	CSRF    string // must come back with every form
	Expires time.Time
	Flash   *flash // shown once, on the next page
}

// flash is a message about the last action, shown on the page after it.
type flash struct {
	Error   bool
	Message string
	Hint    string
}

// sessions keeps the logged-in sessions in memory: a restart of the API
// logs everyone out, and on a platform of several API nodes a session
// belongs to the node it was made on (docs/dashboard.md).
type sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu   sync.Mutex
	byID map[string]*session // guarded by mu, as is every session in it
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, byID: map[string]*session{}}
}

// randomToken is a random string of 128 bits and more.
func randomToken() string { return rand.Text() }

// create starts a session for token, whose owner is who. Expired sessions
// go first; when there are still too many, the one closest to expiring.
func (s *sessions) create(token string, who skiff.WhoAmI) session {
	now := s.now()
	sess := &session{ID: randomToken(), Token: token, User: who.User, Admin: who.Admin, CSRF: randomToken(), Expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= s.max {
		var oldest *session
		for id, o := range s.byID {
			if !now.Before(o.Expires) {
				delete(s.byID, id)
			} else if oldest == nil || o.Expires.Before(oldest.Expires) {
				oldest = o
			}
		}
		if len(s.byID) >= s.max && oldest != nil {
			delete(s.byID, oldest.ID)
		}
	}
	s.byID[sess.ID] = sess
	return *sess
}

// get finds the live session of an ID, and takes its flash message.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(sess.Expires) {
		delete(s.byID, id)
		return session{}, false
	}
	out := *sess
	sess.Flash = nil
	return out, true
}

// flash leaves a message for the session's next page.
func (s *sessions) flash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok {
		sess.Flash = &f
	}
}

// delete ends a session.
func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// fromRequest is the session whose cookie the request carries.
func (s *sessions) fromRequest(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return session{}, false
	}
	return s.get(c.Value)
}

// validCSRF reports whether a form's CSRF token is the one expected, in
// constant time. An empty expected token matches nothing.
func validCSRF(expected, got string) bool {
	return expected != "" && subtle.ConstantTimeCompare([]byte(expected), []byte(got)) == 1
}

// setCookie sets one of the dashboard's cookies; maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/dashboard/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secureRequest(r),
	})
}

// secureRequest reports whether the browser reached the dashboard over
// HTTPS: directly, or through a proxy that says so.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}
