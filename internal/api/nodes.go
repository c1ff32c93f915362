package api

import (
	"cmp"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// listNodes shows every node with its state, capacity and load.
func (a *API) listNodes(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	ctx := r.Context()
	nodes, err := a.st.Nodes.Values(ctx, "")
	if err != nil {
		writeError(w, err)
		return
	}
	assigned, err := a.st.Assignments.Values(ctx, "")
	if err != nil {
		writeError(w, err)
		return
	}
	leader, err := a.st.LeaseHolder(ctx, "scheduler")
	if err != nil {
		writeError(w, err)
		return
	}
	byName := map[string]*skiff.NodeInfo{}
	out := make([]skiff.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = skiff.NodeInfo{Node: n, Leader: n.Name == leader}
		byName[n.Name] = &out[i]
	}
	for _, as := range assigned {
		if n := byName[as.Node]; n != nil {
			n.Assigned++
			n.Reserved += n.MemoryFor(cmp.Or(as.Size, skiff.DefaultSize))
		}
	}
	now := time.Now()
	for i := range out {
		out[i].Status = skiff.NodeStatus(out[i].Node, out[i].Assigned, now)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// drainNode sets or clears a node's drain flag: the scheduler moves a
// draining node's instances elsewhere, each new one up before its old
// one stops.
func (a *API) drainNode(drain bool) func(http.ResponseWriter, *http.Request, skiff.Token) {
	return func(w http.ResponseWriter, r *http.Request, tok skiff.Token) {
		name := r.PathValue("node")
		n, _, err := a.st.Nodes.Update(r.Context(), name, func(n *skiff.Node) error {
			if n.Drain == drain {
				return store.ErrNoChange
			}
			n.Drain = drain
			return nil
		})
		if errors.Is(err, skiff.ErrNotFound) {
			err = skiff.Errorf(skiff.KindNotFound, "skiff nodes lists the nodes", "no node named %q", name)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		msg := "Node " + name + " takes instances again"
		if drain {
			msg = "Node " + name + " is draining: its instances move to other nodes"
		}
		a.log.Info(msg, "node", name)
		a.st.Emit(skiff.Event{Type: skiff.EventNodeDrain, Node: name, Actor: tok.User, Message: msg + " (by " + tok.User + ")"})
		writeJSON(w, http.StatusOK, skiff.NodeInfo{Node: n, Status: skiff.NodeStatus(n, 0, time.Now())})
	}
}

// removeNode forgets a node that is no longer running: dead, or stopped
// after a drain. A node that still beats is refused: it would come back.
func (a *API) removeNode(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	name := r.PathValue("node")
	n, rev, err := a.st.Nodes.Get(r.Context(), name)
	if errors.Is(err, skiff.ErrNotFound) {
		err = skiff.Errorf(skiff.KindNotFound, "skiff nodes lists the nodes", "no node named %q", name)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if n.State != skiff.NodeDead && time.Since(n.Heartbeat) < skiff.NodeSuspectAfter {
		writeError(w, skiff.Errorf(skiff.KindConflict, "drain it (skiff nodes drain "+name+"), stop its skiff server, then remove it",
			"node %s is running", name))
		return
	}
	if err := a.st.Nodes.DeleteAt(r.Context(), name, rev); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getPlacement shows the node labels an app's instances are pinned to.
func (a *API) getPlacement(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, placementView(app.Placement))
}

// setPlacement replaces the labels an app's instances are pinned to; the
// scheduler moves the instances on other nodes, each new one up before
// its old one stops.
func (a *API) setPlacement(w http.ResponseWriter, r *http.Request, _ skiff.Token) {
	app, _, err := a.app(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var want map[string]string
	if err := readJSON(r, &want); err != nil {
		writeError(w, err)
		return
	}
	for k, v := range want {
		if err := skiff.ValidateLabel(k, v); err != nil {
			writeError(w, err)
			return
		}
	}
	app, _, err = a.st.Apps.Update(r.Context(), app.Name, func(app *skiff.App) error {
		app.Placement = want
		if len(want) == 0 {
			app.Placement = nil
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, placementView(app.Placement))
}

func placementView(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
