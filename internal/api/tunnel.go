package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
)

// tunnelDialTimeout bounds the connection to an add-on's server.
const tunnelDialTimeout = 5 * time.Second

// tunnel joins the client's connection to the add-on's server: skiff pg
// psql and skiff redis cli reach the database through it from a laptop,
// without the server listening anywhere but on the platform's network.
// It needs the connection upgraded to skiff-tunnel; what goes wrong
// before the upgrade is an ordinary error answer.
func (a *API) tunnel(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
	app, ad, err := a.appAddon(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), skiff.TunnelUpgrade) {
		writeError(w, skiff.Errorf(skiff.KindInvalid, "send Connection: Upgrade and Upgrade: "+skiff.TunnelUpgrade+", as skiff pg psql does",
			"a tunnel needs a connection upgraded to %s", skiff.TunnelUpgrade))
		return
	}
	if ad.State != skiff.AddonReady || ad.Addr == "" {
		state := string(ad.State)
		if ad.State == skiff.AddonReady {
			state = "without an address yet"
		}
		writeError(w, skiff.Errorf(skiff.KindConflict, "skiff addons info "+ad.Name+" -a "+app.Name+" shows its state; try again once it is ready",
			"the add-on is %s", state))
		return
	}
	d := net.Dialer{Timeout: tunnelDialTimeout}
	backend, err := d.DialContext(r.Context(), "tcp", ad.Addr)
	if err != nil {
		writeError(w, &skiff.Error{Kind: skiff.KindUnavailable, Message: "cannot reach " + ad.Name + "'s server at " + ad.Addr,
			Hint: "its server may be restarting; skiff addons info " + ad.Name + " -a " + app.Name + " shows its state", Err: err})
		return
	}
	defer backend.Close()
	a.streams.Add(1)
	defer a.streams.Done()
	client, rd, err := switchProtocols(w, skiff.TunnelUpgrade, nil)
	if err != nil {
		return
	}
	defer client.Close()
	log := a.log.With("app", app.Name, "addon", ad.Name, "user", tok.User)
	log.Info("tunnel opened", "addr", ad.Addr)
	up, down := splice(r.Context(), client, rd, backend)
	log.Info("tunnel closed", "sent", up, "received", down)
}

// splice copies bytes both ways between a client's connection (read
// through rd, which holds what was read of it already) and a backend's,
// until both directions end or ctx does. A direction that ends cleanly
// half-closes the other side, so that each sees the other's end of
// input; one that fails ends both.
func splice(ctx context.Context, client net.Conn, rd io.Reader, backend net.Conn) (up, down int64) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			backend.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()
	defer closeBoth()
	var wg sync.WaitGroup
	pass := func(dst net.Conn, src io.Reader, n *int64) {
		defer wg.Done()
		var err error
		*n, err = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			if cw.CloseWrite() == nil {
				return
			}
		}
		closeBoth()
	}
	wg.Add(2)
	go pass(backend, rd, &up)
	go pass(client, backend, &down)
	wg.Wait()
	return up, down
}
