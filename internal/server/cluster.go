package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiff-paas/skiff/internal/bus"
	"github.com/skiff-paas/skiff/internal/secret"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// A cluster starts on one node with the bus role and a cluster address
// (--cluster-addr): at its first start it makes the cluster's secrets,
// kept in DATA/cluster/. `skiff server join-token` prints them, with the
// bus token, the platform's secret key and the addresses of the bus, as
// one token; a node started with --join-token takes them into its own
// data directory and joins: as a bus node (its routes go to the cluster's
// bus nodes), or, without the bus role, as a client of the bus nodes.
// Every connection between nodes is TLS with certificates of the
// cluster's authority, on top of the bus token and route credentials.
//
// A cluster has three bus nodes (or more): its state is made, at three
// replicas, once the third has joined, and JetStream's Raft keeps it
// through the death of any one of them. Until then the nodes wait.

// clusterReplicas is how many copies a cluster keeps of its state.
const clusterReplicas = 3

// clusterDir holds a node's cluster secrets.
const clusterDir = "cluster"

// clusterInfo is DATA/cluster/cluster.json.
type clusterInfo struct {
	Name          string   `json:"name"`
	RouteUser     string   `json:"route_user"`
	RoutePassword string   `json:"route_password"`
	CACert        []byte   `json:"ca_cert"`
	CAKey         []byte   `json:"ca_key"`
	Routes        []string `json:"routes,omitempty"`  // route addresses of bus nodes
	Clients       []string `json:"clients,omitempty"` // nats:// URLs of bus nodes
}

// joinToken is what a node needs to join: the cluster's secrets and the
// platform's keys.
type joinToken struct {
	clusterInfo
	BusToken  []byte `json:"bus_token"`
	SecretKey []byte `json:"secret_key"`
}

const tokenPrefix = "SKIFFJOIN1."

func (t joinToken) encode() (string, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(data), nil
}

func decodeJoinToken(s string) (joinToken, error) {
	var t joinToken
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	data, err := base64.RawURLEncoding.DecodeString(rest)
	if !ok || err != nil || json.Unmarshal(data, &t) != nil || t.Name == "" || len(t.BusToken) == 0 || len(t.SecretKey) == 0 {
		return t, errors.New("the join token is not one `skiff server join-token` printed: copy it whole")
	}
	return t, nil
}

func clusterFile(dataDir string) string { return filepath.Join(dataDir, clusterDir, "cluster.json") }

// loadCluster reads the node's cluster secrets; ok is false when the node
// is not in a cluster.
func loadCluster(dataDir string) (info clusterInfo, ok bool, err error) {
	data, err := os.ReadFile(clusterFile(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return info, false, nil
	}
	if err != nil {
		return info, false, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, false, fmt.Errorf("%s: %w", clusterFile(dataDir), err)
	}
	return info, true, nil
}

func saveCluster(dataDir string, info clusterInfo) error {
	if err := os.MkdirAll(filepath.Join(dataDir, clusterDir), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := clusterFile(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, clusterFile(dataDir))
}

// writeKey writes a key file the joining node takes from the token,
// refusing to replace a different one: the data directory would belong
// to another platform.
func writeKey(path string, key []byte) error {
	old, err := secret.ReadKey(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return secret.WriteFileExclusive(path, []byte(hex.EncodeToString(key)+"\n"))
	case err != nil:
		return err
	case !bytes.Equal(old, key):
		return fmt.Errorf("%s holds another platform's key: join with a fresh data directory", path)
	}
	return nil
}

// prepareCluster makes or takes the node's cluster secrets as its flags
// say, and returns them; ok is false for a node outside any cluster.
func prepareCluster(cfg Config) (info clusterInfo, ok bool, err error) {
	info, ok, err = loadCluster(cfg.DataDir)
	if err != nil {
		return info, false, err
	}
	if cfg.JoinToken != "" {
		t, err := decodeJoinToken(cfg.JoinToken)
		if err != nil {
			return info, false, err
		}
		if ok && info.Name != t.Name || ok && !bytes.Equal(info.CACert, t.CACert) {
			return info, false, fmt.Errorf("this data directory belongs to cluster %q already: join with a fresh one", info.Name)
		}
		if !ok {
			if err := writeKey(filepath.Join(cfg.DataDir, "bus.key"), t.BusToken); err != nil {
				return info, false, err
			}
			if err := writeKey(filepath.Join(cfg.DataDir, "secret.key"), t.SecretKey); err != nil {
				return info, false, err
			}
			info = t.clusterInfo
		}
		info.Routes, info.Clients = union(info.Routes, t.Routes), union(info.Clients, t.Clients)
		ok = true
	}
	if !ok && cfg.ClusterAddr != "" {
		ca, err := bus.NewCA("skiff")
		if err != nil {
			return info, false, err
		}
		info = clusterInfo{Name: "skiff", RouteUser: "route", RoutePassword: secret.Token(24), CACert: ca.CertPEM, CAKey: ca.KeyPEM}
		ok = true
	}
	if !ok {
		return info, false, nil
	}
	if cfg.ClusterAddr != "" {
		info.Routes = union(info.Routes, []string{advertised(cfg.ClusterAddr, cfg.AgentAddr)})
	}
	if cfg.BusAddr != "" {
		info.Clients = union(info.Clients, []string{"nats://" + advertised(cfg.BusAddr, cfg.AgentAddr)})
	}
	return info, true, saveCluster(cfg.DataDir, info)
}

// advertised is addr with an unspecified host (":4222", "0.0.0.0:4222")
// replaced by host, the node's address.
func advertised(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		h = host
	}
	return net.JoinHostPort(h, port)
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if x != "" && !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// nodeTLS is the node's TLS configuration: a certificate of the cluster's
// authority for its addresses, made at each start.
func nodeTLS(cfg Config, info clusterInfo) (*tls.Config, error) {
	ca, err := bus.LoadCA(info.CACert, info.CAKey)
	if err != nil {
		return nil, err
	}
	hosts := []string{cfg.NodeName, cfg.AgentAddr, "127.0.0.1", "localhost"}
	for _, a := range []string{cfg.BusAddr, cfg.ClusterAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	cert, err := ca.Issue(cfg.NodeName, hosts...)
	if err != nil {
		return nil, err
	}
	return ca.TLS(cert), nil
}

// JoinToken prints the token a node joins the cluster of the node whose
// data directory is dataDir with.
func JoinToken(dataDir string) (string, error) {
	info, ok, err := loadCluster(dataDir)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("this node is in no cluster: start it with --cluster-addr (and --bus-addr) first")
	}
	busToken, err := secret.ReadKey(filepath.Join(dataDir, "bus.key"))
	if err != nil {
		return "", err
	}
	secretKey, err := secret.ReadKey(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		return "", err
	}
	if len(info.Clients) == 0 {
		return "", errors.New("the bus of this node listens for no other node: start it with --bus-addr")
	}
	return joinToken{clusterInfo: info, BusToken: busToken, SecretKey: secretKey}.encode()
}

// connectBus starts this node's bus, when it has the role, and connects
// to it; a node without it connects to the cluster's bus nodes. b is nil
// then.
func connectBus(cfg Config, info clusterInfo, clustered bool, token string) (nc *nats.Conn, b *bus.Bus, err error) {
	var tlsConfig *tls.Config
	if clustered {
		if tlsConfig, err = nodeTLS(cfg, info); err != nil {
			return nil, nil, fmt.Errorf("server: cluster: %w", err)
		}
	}
	if !contains(cfg.Roles, skiff.RoleBus) {
		if !clustered {
			return nil, nil, errors.New("server: a node without the bus role joins a cluster: give --join-token (see skiff server join-token)")
		}
		nc, err := dialCluster(cfg, info, token, tlsConfig)
		return nc, nil, err
	}
	bc := bus.Config{Dir: filepath.Join(cfg.DataDir, "bus"), Name: cfg.NodeName, Listen: cfg.BusAddr, Token: token,
		Logger: cfg.Logger.With("role", "bus")}
	if clustered {
		if cfg.BusAddr == "" || cfg.ClusterAddr == "" {
			return nil, nil, errors.New("server: a bus node of a cluster needs --bus-addr (for the other nodes' processes) and --cluster-addr (for the other bus nodes)")
		}
		bc.TLS = tlsConfig
		bc.Cluster = &bus.Cluster{Name: info.Name, Listen: cfg.ClusterAddr, Peers: info.Routes,
			User: info.RouteUser, Password: info.RoutePassword}
		if adv := advertised(cfg.ClusterAddr, cfg.AgentAddr); adv != cfg.ClusterAddr {
			bc.Cluster.Advertise = adv
		}
	}
	if b, err = bus.New(bc); err != nil {
		return nil, nil, err
	}
	if err := b.Start(time.Minute); err != nil {
		return nil, nil, err
	}
	if nc, err = b.Connect(cfg.NodeName); err != nil {
		b.Shutdown()
		return nil, nil, err
	}
	return nc, b, nil
}

// openStore opens the state, retrying while the bus cannot take it yet;
// on a bus node of a cluster, once the cluster has its bus nodes.
func openStore(ctx context.Context, b *bus.Bus, nc *nats.Conn, box *secret.Box, opt store.Options) (*store.Store, error) {
	if opt.Replicas > 1 {
		if err := waitForCluster(ctx, b, nc, opt.Replicas, opt.Logger); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	var st *store.Store
	var err error
	werr := until(ctx, time.Second, func() bool {
		// Short tries: a request to a stream still catching up may hang
		// for the whole try, while the next one is answered at once.
		// What a try made (buckets, replicas) stays made.
		octx, cancel := context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
		if st, err = store.Open(octx, nc, box, opt); err == nil || time.Now().After(deadline) {
			return true
		}
		if opt.Logger != nil {
			opt.Logger.Warn("state not reachable yet; retrying", "err", err)
		}
		return false
	})
	return st, cmp.Or(err, werr)
}

// waitForCluster waits, on a bus node, until the cluster has as many bus
// nodes as the state has replicas; then, on every node but the meta
// leader, for the leader to make the state (for a minute at most): all
// proposing the same streams at once slows them all down, and an update
// of a stream by one node while another binds to it could leave the
// latter reading the stream in a way it no longer answers (direct gets,
// store.go).
func waitForCluster(ctx context.Context, b *bus.Bus, nc *nats.Conn, replicas int, log *slog.Logger) error {
	if b != nil {
		if b.Peers() < replicas && log != nil {
			log.Info("waiting for the cluster's bus nodes to join", "have", b.Peers(), "want", replicas)
		}
		if err := until(ctx, 500*time.Millisecond, func() bool { return b.Peers() >= replicas }); err != nil {
			return err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	return until(ctx, 500*time.Millisecond, func() bool {
		if (b != nil && b.Leads()) || time.Now().After(deadline) {
			return true
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.Stream(sctx, skiff.StreamDeliveries) // the last one the state makes
		return err == nil
	})
}

// until calls done every interval until it reports true, or ctx ends.
func until(ctx context.Context, interval time.Duration, done func() bool) error {
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil
}

// dialCluster connects a node without the bus role to the cluster's bus
// nodes.
func dialCluster(cfg Config, info clusterInfo, busToken string, tlsConfig *tls.Config) (*nats.Conn, error) {
	urls := cfg.Join
	if len(urls) == 0 {
		urls = info.Clients
	}
	if len(urls) == 0 {
		return nil, errors.New("no bus node to connect to: give --join nats://HOST:PORT")
	}
	return bus.Dial(urls, busToken, tlsConfig, cfg.NodeName)
}
