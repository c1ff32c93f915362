package bus

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCollector: the bus node's counts and each stream's messages and
// bytes, read at the scrape.
func TestCollector(t *testing.T) {
	b := start(t, Config{Dir: t.TempDir(), Token: testToken})
	js, err := jetstream.New(connect(t, b))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SAMPLES", Subjects: []string{"samples.>"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "samples.x", []byte("12345")); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Collector())
	want := `
# HELP skiff_bus_stream_messages Messages a JetStream stream holds on this node.
# TYPE skiff_bus_stream_messages gauge
skiff_bus_stream_messages{stream="SAMPLES"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "skiff_bus_stream_messages"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "skiff_bus_connections", "skiff_bus_messages_in_total", "skiff_bus_stream_bytes"); err != nil || n != 3 {
		t.Errorf("%d series, %v", n, err)
	}
}
