package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// hashToken is the key a token is stored under: the bus holds no token
// that could be used as it is.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenKey carries the request's token in its context.
type tokenKey struct{}

// tokenOf is the token a request was authenticated with.
func tokenOf(r *http.Request) skiff.Token {
	tok, _ := r.Context().Value(tokenKey{}).(skiff.Token)
	return tok
}

// admin wraps a handler that only admins may call.
func admin(h func(http.ResponseWriter, *http.Request, skiff.Token)) func(http.ResponseWriter, *http.Request, skiff.Token) {
	return func(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
		if !tok.Admin {
			writeError(w, skiff.Errorf(skiff.KindForbidden, "ask an admin of this Skiff", "only admins may do this"))
			return
		}
		h(w, r, tok)
	}
}

func (a *API) authenticated(h func(http.ResponseWriter, *http.Request, skiff.Token)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const hint = "log in with skiff login --api URL --token TOKEN; the admin token is in the server's DATA/admin.token"
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		raw = strings.TrimSpace(raw)
		if !ok || raw == "" {
			writeError(w, skiff.Errorf(skiff.KindUnauthorized, hint, "no API token given"))
			return
		}
		tok, _, err := a.st.Tokens.Get(r.Context(), hashToken(raw))
		if errors.Is(err, skiff.ErrNotFound) {
			writeError(w, skiff.Errorf(skiff.KindUnauthorized, hint, "unknown API token"))
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		if tok.Scope != "" && !scopeRoutes[tok.Scope][r.Pattern] {
			writeError(w, skiff.Errorf(skiff.KindForbidden,
				"a "+skiff.ScopeBackupsRead+" token lists and downloads backups (skiff backups pull); log in with a user's token for the rest",
				"this token may only pull backups"))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)), tok)
	}
}

// scopeRoutes are the only routes (by their pattern in Handler) a token
// limited to a scope may call.
var scopeRoutes = map[string]map[string]bool{
	skiff.ScopeBackupsRead: {
		"GET /v1/whoami":                      true,
		"GET /v1/backups":                     true,
		"GET /v1/backups/{app}/{id}/download": true,
	},
}

// mayPullBackups wraps a handler of every app's backups: admins and
// backups:read tokens may call it.
func mayPullBackups(h func(http.ResponseWriter, *http.Request, skiff.Token)) func(http.ResponseWriter, *http.Request, skiff.Token) {
	return func(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
		if !tok.Admin && tok.Scope != skiff.ScopeBackupsRead {
			writeError(w, skiff.Errorf(skiff.KindForbidden, "an admin can make a read-only token for this: skiff backups token",
				"only admins and %s tokens may pull every app's backups", skiff.ScopeBackupsRead))
			return
		}
		h(w, r, tok)
	}
}

// createToken makes a token limited to a scope (admins only), shown once.
// It carries the admin's name, for the record, but not the admin's rights.
func (a *API) createToken(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var req skiff.TokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if _, ok := scopeRoutes[req.Scope]; !ok {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "the only scope is "+skiff.ScopeBackupsRead+"; skiff users create NAME makes a user's token",
			"unknown token scope %q", req.Scope))
		return
	}
	token := secret.Token(24)
	rec := skiff.Token{User: tok.User, Scope: req.Scope, CreatedAt: time.Now().UTC()}
	if _, err := a.st.Tokens.Create(r.Context(), hashToken(token), rec); err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("token created", "user", tok.User, "scope", req.Scope)
	writeJSON(w, http.StatusCreated, skiff.ScopedToken{User: rec.User, Scope: rec.Scope, Token: token})
}

// BootstrapAdmin makes sure an admin token exists: the one in the file at
// path if there is one, else a new one written there (mode 0600). It
// reports whether the token was created.
func BootstrapAdmin(ctx context.Context, st *store.Store, path string) (token string, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		token = strings.TrimSpace(string(data))
		if token == "" {
			return "", false, fmt.Errorf("admin token file %s is empty: delete it to make a new token", path)
		}
	case errors.Is(err, os.ErrNotExist):
		token, created = secret.Token(24), true
	default:
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	_, err = st.Tokens.Create(ctx, hashToken(token), skiff.Token{User: "admin", Admin: true, CreatedAt: time.Now().UTC()})
	if err != nil && !errors.Is(err, skiff.ErrConflict) {
		return "", false, err
	}
	if created {
		if err := secret.WriteFileExclusive(path, []byte(token+"\n")); err != nil {
			return "", false, fmt.Errorf("write admin token: %w", err)
		}
	}
	return token, created, nil
}
