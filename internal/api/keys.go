package api

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
)

// listKeys lists the caller's SSH keys; an admin sees everyone's.
func (a *API) listKeys(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	keys, err := a.st.Keys.Values(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	out := []skiff.Key{}
	for _, k := range keys {
		if tok.Admin || k.User == tok.User {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	writeJSON(w, http.StatusOK, out)
}

// addKey adds an SSH public key for the caller.
func (a *API) addKey(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var req skiff.KeyRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(req.PublicKey)))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "give one public key as in ~/.ssh/id_ed25519.pub: ssh-ed25519 AAAA… you@host",
			"not an SSH public key"))
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = comment
	}
	key := skiff.Key{
		Fingerprint: ssh.FingerprintSHA256(pub), User: tok.User, Name: name,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), CreatedAt: time.Now().UTC(),
	}
	if _, err := a.st.Keys.Create(r.Context(), skiff.KeyID(key.Fingerprint), key); errors.Is(err, skiff.ErrConflict) {
		writeError(w, skiff.Errorf(skiff.KindConflict, "skiff keys lists the keys", "key %s is already added", key.Fingerprint))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, key)
}

// removeKey removes a key named by its fingerprint or its name.
func (a *API) removeKey(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	ref := r.PathValue("key")
	keys, err := a.st.Keys.Values(r.Context(), "")
	if err != nil {
		writeError(w, err)
		return
	}
	var found []skiff.Key
	for _, k := range keys {
		if (tok.Admin || k.User == tok.User) && (k.Fingerprint == ref || k.Name == ref) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		writeError(w, skiff.Errorf(skiff.KindNotFound, "skiff keys lists the keys", "no key %s", ref))
		return
	case 1:
	default:
		writeError(w, skiff.Errorf(skiff.KindConflict, "name the key by its fingerprint: skiff keys lists them",
			"%d keys are named %s", len(found), ref))
		return
	}
	if err := a.st.Keys.Delete(r.Context(), skiff.KeyID(found[0].Fingerprint)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// createUser makes a user and its first API token, shown once.
func (a *API) createUser(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	var req skiff.UserRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := skiff.ValidateUserName(req.Name); err != nil {
		writeError(w, err)
		return
	}
	token := secret.Token(24)
	rec := skiff.Token{User: req.Name, Admin: req.Admin, CreatedAt: time.Now().UTC()}
	if _, err := a.st.Tokens.Create(r.Context(), hashToken(token), rec); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, skiff.UserToken{User: rec.User, Admin: rec.Admin, Token: token})
}
