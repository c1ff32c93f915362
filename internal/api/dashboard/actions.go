package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/skiff-paas/skiff/internal/client"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// loginContent is what the login page shows.
type loginContent struct {
	CSRF   string
	Notice string
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := d.sessions.fromRequest(r); ok {
		http.Redirect(w, r, Prefix, http.StatusSeeOther)
		return
	}
	var notice string
	switch {
	case r.URL.Query().Has("ended"):
		notice = "Your session ended: log in again."
	case r.URL.Query().Has("out"):
		notice = "You are logged out."
	}
	d.showLogin(w, r, http.StatusOK, notice, nil)
}

// showLogin renders the login form with a fresh CSRF token in a cookie
// and in the form.
func (d *Dashboard) showLogin(w http.ResponseWriter, r *http.Request, status int, notice string, f *flash) {
	token := randomToken()
	setCookie(w, r, loginCookie, token, 3600)
	d.render(w, status, "login", nil, page{Title: "Log in", Flash: f, Content: loginContent{CSRF: token, Notice: notice}})
}

// login checks a token with the API and starts a session for it. Tokens
// limited to a scope (backups:read) may not log in: they may read nothing
// the dashboard shows.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err := r.ParseForm(); err != nil || c == nil || !validCSRF(c.Value, r.PostFormValue(csrfField)) {
		d.showLogin(w, r, http.StatusForbidden, "", &flash{Error: true, Message: "This form has expired.", Hint: "Log in again."})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		d.showLogin(w, r, http.StatusBadRequest, "", &flash{Error: true, Message: "Paste an API token to log in.",
			Hint: "The admin token is in the server's DATA/admin.token; skiff users create NAME makes a user's token."})
		return
	}
	who, err := d.cfg.Client(token).WhoAmI(r.Context())
	if err == nil && who.Scope != "" {
		err = skiff.Errorf(skiff.KindForbidden, "log in with the admin token or a user's token",
			"a %s token may not log in to the dashboard", who.Scope)
	}
	if err != nil {
		d.log.Warn("dashboard login refused", "remote", r.RemoteAddr, "err", err)
		status, body := skiff.ErrorBody(err)
		d.showLogin(w, r, status, "", &flash{Error: true, Message: sentence(body.Error), Hint: sentence(body.Hint)})
		return
	}
	sess := d.sessions.create(token, who)
	d.log.Info("dashboard login", "user", who.User, "remote", r.RemoteAddr)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, sess.ID, int(d.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *request) {
	d.sessions.delete(r.session.ID)
	setCookie(w, r.Request, sessionCookie, "", -1)
	http.Redirect(w, r.Request, Prefix+"login?out=1", http.StatusSeeOther)
}

// appAction is an action on an app: a form posted to
// /dashboard/apps/{app}/NAME, carried out by one call to the API with the
// session's token, so the API checks it as it checks the CLI's. It says
// what it did, for the page shown next.
type appAction struct {
	anchor string // the section of the app page to show next
	do     func(ctx context.Context, c *client.Client, app string, form url.Values) (string, error)
}

// appActions are the actions by the last element of their path.
var appActions = map[string]appAction{
	"scale":       {"processes", scale},
	"restart":     {"processes", restart},
	"rollback":    {"releases", rollback},
	"config":      {"config", changeConfig},
	"maintenance": {"overview", setMaintenance},
}

func (d *Dashboard) appAction(act appAction) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, r *request) {
		app := r.PathValue("app")
		msg, err := act.do(r.Context(), r.client, app, r.PostForm)
		if skiff.KindOf(err) == skiff.KindUnauthorized {
			d.failAPI(w, r, err)
			return
		}
		f := flash{Message: msg}
		if err != nil {
			_, body := skiff.ErrorBody(err)
			f = flash{Error: true, Message: sentence(body.Error), Hint: sentence(body.Hint)}
		}
		d.log.Info("dashboard action", "user", r.session.User, "app", app, "path", r.URL.Path, "err", err)
		d.sessions.flash(r.session.ID, f)
		http.Redirect(w, r.Request, Prefix+"apps/"+url.PathEscape(app)+"#"+act.anchor, http.StatusSeeOther)
	}
}

func scale(ctx context.Context, c *client.Client, app string, form url.Values) (string, error) {
	typ, quantity := strings.TrimSpace(form.Get("type")), strings.TrimSpace(form.Get("quantity"))
	n, err := strconv.Atoi(quantity)
	if err != nil {
		return "", skiff.Errorf(skiff.KindInvalid, "give a whole number of processes, e.g. 2 (0 stops them all)", "invalid quantity %q", quantity)
	}
	if _, err := c.Scale(ctx, app, skiff.ScaleRequest{Quantity: map[string]int{typ: n}}); err != nil {
		return "", err
	}
	return fmt.Sprintf("Scaled %s to %d.", typ, n), nil
}

func restart(ctx context.Context, c *client.Client, app string, form url.Values) (string, error) {
	typ := strings.TrimSpace(form.Get("type"))
	if err := c.Restart(ctx, app, typ); err != nil {
		return "", err
	}
	if typ == "" {
		return "Restarting every process of " + app + ".", nil
	}
	return "Restarting the " + typ + " processes.", nil
}

func rollback(ctx context.Context, c *client.Client, app string, form url.Values) (string, error) {
	v, err := skiff.ParseVersion(strings.TrimSpace(form.Get("version")))
	if err != nil {
		return "", err
	}
	rel, err := c.Rollback(ctx, app, v)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Rolling back to %s: release %s is starting.", skiff.VersionLabel(v), skiff.VersionLabel(rel.Version)), nil
}

func changeConfig(ctx context.Context, c *client.Client, app string, form url.Values) (string, error) {
	key := strings.TrimSpace(form.Get("key"))
	var ch skiff.ConfigChange
	var did string
	switch form.Get("op") {
	case "set":
		ch.Set, did = map[string]string{key: form.Get("value")}, "Set "+key
	case "unset":
		ch.Unset, did = []string{key}, "Removed "+key
	default:
		return "", skiff.Errorf(skiff.KindInvalid, "use the forms of the config section", "unknown config change %q", form.Get("op"))
	}
	resp, err := c.ChangeConfig(ctx, app, ch)
	if err != nil {
		return "", err
	}
	if resp.Release == 0 {
		return did + ": the next release uses it.", nil
	}
	return fmt.Sprintf("%s: release %s is starting.", did, skiff.VersionLabel(resp.Release)), nil
}

func setMaintenance(ctx context.Context, c *client.Client, app string, form url.Values) (string, error) {
	on := form.Get("enabled") == "on"
	if _, err := c.SetMaintenance(ctx, app, on); err != nil {
		return "", err
	}
	if on {
		return "Maintenance mode is on: visitors of " + app + " get the maintenance page.", nil
	}
	return "Maintenance mode is off: " + app + " serves its visitors again.", nil
}
