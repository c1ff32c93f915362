package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiff-paas/skiff/internal/bus"
	"github.com/skiff-paas/skiff/internal/skiff"
	"github.com/skiff-paas/skiff/internal/store"
)

// busCmd runs an embedded bus on a random loopback port until it is
// signalled. It writes the bus's URL and a random token, one a line, to
// -info-file; the other subcommands read that file.
func busCmd(args []string) error {
	fs := flag.NewFlagSet("bus", flag.ExitOnError)
	dir := fs.String("dir", "", "JetStream directory (required; tmpfs keeps fsync out of the measurement)")
	info := fs.String("info-file", "", "where to write the URL and token (required)")
	fs.Parse(args)
	if *dir == "" || *info == "" {
		return errors.New("-dir and -info-file are required")
	}
	var raw [16]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	b, err := bus.New(bus.Config{Dir: *dir, Name: "bench", Listen: "127.0.0.1:0", Token: token})
	if err != nil {
		return err
	}
	if err := b.Start(30 * time.Second); err != nil {
		return err
	}
	defer b.Shutdown()
	// Lay out the buckets now, so that the router and the seeder find them.
	nc, err := b.Connect("bench-bus")
	if err != nil {
		return err
	}
	if _, err := store.Open(context.Background(), nc, nil, store.Options{}); err != nil {
		return err
	}
	nc.Close()
	if err := writeFileAtomic(*info, b.ClientURL()+"\n"+token+"\n"); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// openStore connects to the bus described by the info file busCmd wrote.
func openStore(ctx context.Context, infoFile, name string) (*store.Store, error) {
	data, err := os.ReadFile(infoFile)
	if err != nil {
		return nil, err
	}
	lines := strings.Fields(string(data))
	if len(lines) != 2 {
		return nil, fmt.Errorf("%s: want a URL and a token", infoFile)
	}
	nc, err := nats.Connect(lines[0], nats.Token(lines[1]), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect to the bus: %w", err)
	}
	st, err := store.Open(ctx, nc, nil, store.Options{})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return st, nil
}

// release is the release every seeded app runs.
const release = 1

// webInstance is the record of a web instance up at addr.
func webInstance(app, id, addr string) skiff.Instance {
	return skiff.Instance{ID: id, App: app, Proc: "web", Index: 1, Release: release, Generation: 1,
		Node: "bench", State: skiff.StateUp, Addr: addr, Since: time.Now()}
}

// newInstanceID makes an ID the way the scheduler does: 10 random hex
// digits, so that instance IDs are unique across apps as in a real
// cluster.
func newInstanceID() string {
	var b [5]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// appName is the name of the i-th seeded app.
func appName(i int) string { return fmt.Sprintf("app%d", i) }

// seedCmd writes apps [from, from+apps) with their web instances, and
// appends their hostnames to -hosts-file.
func seedCmd(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	info := fs.String("bus-file", "", "the bus's info file (required)")
	from := fs.Int("from", 0, "index of the first app")
	apps := fs.Int("apps", 1, "apps to write")
	backends := fs.Int("backends", 3, "web instances per app")
	addrs := fs.String("addrs", "", "comma-separated backend addresses; instance k of an app gets address k modulo their number (required)")
	domain := fs.String("domain", "bench.test", "platform domain, for -hosts-file")
	hostsFile := fs.String("hosts-file", "", "file to append the apps' hostnames to")
	fs.Parse(args)
	if *info == "" || *addrs == "" {
		return errors.New("-bus-file and -addrs are required")
	}
	ctx := context.Background()
	st, err := openStore(ctx, *info, "bench-seed")
	if err != nil {
		return err
	}
	defer st.NC.Close()
	backendAddrs := strings.Split(*addrs, ",")

	jobs := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := seedApp(ctx, st, appName(i), *backends, backendAddrs); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	var hosts strings.Builder
	for i := *from; i < *from+*apps; i++ {
		jobs <- i
		hosts.WriteString(skiff.AppHost(appName(i), *domain) + "\n")
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if *hostsFile != "" {
		f, err := os.OpenFile(*hostsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(hosts.String()); err != nil {
			return err
		}
	}
	return nil
}

// seedApp writes an app's instances, then the app, so that the app never
// shows without backends.
func seedApp(ctx context.Context, st *store.Store, app string, backends int, addrs []string) error {
	for k := 0; k < backends; k++ {
		i := webInstance(app, newInstanceID(), addrs[k%len(addrs)])
		if _, err := st.Instances.Put(ctx, i.Key(), i); err != nil {
			return err
		}
	}
	_, err := st.Apps.Put(ctx, app, skiff.App{Name: app, CreatedAt: time.Now(), Current: release})
	return err
}
