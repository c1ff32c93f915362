// Package usage is the metrics role's meter: what each app used, hour by
// hour, and what that costs.
//
// Three kinds of samples come in on the bus. Agents publish a
// skiff.UsageSample for every instance each UsageInterval (10 s) and once
// more when its process ends (the cgroup's last reading): summed, an
// instance's samples are everything its cgroup measured. The addons role
// publishes a skiff.AddonUsageSample of every ready add-on about once a
// minute. Routers publish a skiff.RouterSample per app every 10 s on the
// METRICS stream, with the bytes they sent to clients.
//
// A Fold sums samples into one skiff.UsageHour per app and hour; a sample
// counts in the hour its interval ended in, an add-on's measure for the
// time since its previous one (at most MaxGap). The meter holding the
// "usage" lease folds each hour once it has been over for Grace, stores
// the records in the usage_hours bucket under skiff.UsageHourKey, and
// then moves the mark (skiff.UsageFoldedKey) past it:
//
//	samples ──► USAGE / METRICS streams ──► fold of hour H (at H+1h+Grace)
//	                                   ──► usage_hours: app.YYYY-MM.DDTHH, then folded = H+1h
//
// A fold depends on nothing but the streams, so folding an hour again
// stores the same records (or better ones, if samples came late): a meter
// that lost its lease mid-fold, or two that both folded, do no harm, and
// no fencing is needed.
//
// Every meter answers report requests (skiff.SubjectUsage, a queue
// group): a month's report reads the records of the hours before the mark
// (about 720 per app) and folds the samples of the hours after it on the
// fly, so the current hour counts to the last sample. Price turns the sum
// into the lines of a bill with the prices of the server's configuration.
package usage
