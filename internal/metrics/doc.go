// Package metrics is the metrics role's time series: it folds the samples
// that routers and agents publish into points per app at three
// resolutions, kept in the bus (docs/metrics.md is the user's guide).
//
// # Flow
//
//	router ─ RouterSample every 10 s ─► METRICS (metrics.<app>.router.<node>)
//	agent  ─ UsageSample every 10 s  ─► USAGE   (usage.<app>.<instance>)
//	                      │ the leader's folder (fold.go)
//	                      ▼
//	METRICS_10S (points.10s.<app>, a day) ─► METRICS_1M (a week) ─► METRICS_1H (a year)
//
// CPU and memory come from the USAGE stream the agents already feed for
// metering rather than from samples of their own: the same measurement
// published twice would double the agents' traffic and could disagree
// with itself.
//
// # Leading
//
// Every node with the role competes for the "metrics" lease
// (store.Lead); the holder reads both streams with ordered consumers and
// folds. A step closes once the watermark, the time every source has
// delivered up to (now for a source that is caught up) less Grace, has
// passed its end; its points are written, merged into the open step of
// the next resolution, and so on up. Samples that come after their step
// closed are dropped and counted.
//
// A leader keeps nothing but in memory. One that takes over restores
// from the streams themselves: the last point written at each resolution
// says where the previous leader got to; it folds again the last finest
// step (writing a point again is harmless: the point streams drop a
// message ID seen in the last 10 minutes, and queries keep one point per
// step), reloads the open coarser steps from the finer points written,
// and reads the samples from there on.
package metrics
