package bus

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of this bus node: its
// connections, the messages and bytes it took in and sent out, and each
// JetStream stream's messages, bytes and consumers as this node holds
// them. It reads the server in-process at each scrape.
func (b *Bus) Collector() prometheus.Collector { return collector{b.srv} }

type collector struct{ srv *server.Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("skiff_bus_"+name, help, labels, nil)
}

var (
	connectionsDesc     = desc("connections", "Client connections to this bus node.")
	inMsgsDesc          = desc("messages_in_total", "Messages this bus node received.")
	outMsgsDesc         = desc("messages_out_total", "Messages this bus node sent.")
	inBytesDesc         = desc("bytes_in_total", "Bytes of messages this bus node received.")
	outBytesDesc        = desc("bytes_out_total", "Bytes of messages this bus node sent.")
	slowDesc            = desc("slow_consumers_total", "Clients this bus node dropped for reading too slowly.")
	streamMsgsDesc      = desc("stream_messages", "Messages a JetStream stream holds on this node.", "stream")
	streamBytesDesc     = desc("stream_bytes", "Bytes a JetStream stream holds on this node.", "stream")
	streamConsumersDesc = desc("stream_consumers", "Consumers of a JetStream stream on this node.", "stream")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, inMsgsDesc, outMsgsDesc, inBytesDesc, outBytesDesc, slowDesc,
		streamMsgsDesc, streamBytesDesc, streamConsumersDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	if v, err := c.srv.Varz(nil); err == nil {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(v.Connections))
		ch <- prometheus.MustNewConstMetric(inMsgsDesc, prometheus.CounterValue, float64(v.InMsgs))
		ch <- prometheus.MustNewConstMetric(outMsgsDesc, prometheus.CounterValue, float64(v.OutMsgs))
		ch <- prometheus.MustNewConstMetric(inBytesDesc, prometheus.CounterValue, float64(v.InBytes))
		ch <- prometheus.MustNewConstMetric(outBytesDesc, prometheus.CounterValue, float64(v.OutBytes))
		ch <- prometheus.MustNewConstMetric(slowDesc, prometheus.CounterValue, float64(v.SlowConsumers))
	}
	js, err := c.srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return
	}
	seen := map[string]bool{} // a name in two accounts is reported once
	for _, acc := range js.AccountDetails {
		for _, s := range acc.Streams {
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			ch <- prometheus.MustNewConstMetric(streamMsgsDesc, prometheus.GaugeValue, float64(s.State.Msgs), s.Name)
			ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(s.State.Bytes), s.Name)
			ch <- prometheus.MustNewConstMetric(streamConsumersDesc, prometheus.GaugeValue, float64(s.State.Consumers), s.Name)
		}
	}
}
