// Package cron runs the scheduled jobs of apps: the cron entries of
// app.json, which the builder checks (CheckJobs) and keeps in each
// release. At each time a job's schedule names (a slot, evaluated in
// UTC) it starts the job's command as a detached one-off process of the
// app, exactly as `skiff run --detach` would, so that its output goes to
// the app's logs.
//
// A Runner runs on every node with the scheduler role; only the holder
// of the "cron" lease in the locks bucket acts, the others wait to take
// over:
//
//	acquire lease ──► watch apps and releases (the current release's
//	                  Cron) ──► (both synced) ──► ready
//	tick ──► for each job, the latest slot that began at most Window ago
//	         and was not tried yet ──► renew the lease (the fence) ──►
//	         create the slot's claim in the cron bucket ──► claimed:
//	         start the one-off, emit cron.started (or cron.failed),
//	         record the job's last run; exists: it ran already
//	renew fails ──► stop acting, go back to acquiring
//
// Exactly once per slot: the claim is a Create of APP.JOB.SLOT, which
// fails for everyone but the first, whoever leads and however often the
// lead changes hands; a runner starts a job only after its own create
// succeeded. Right before claiming, the runner renews its lease with an
// update that names the revision it holds: a runner that lost the lease
// fails there and starts nothing, and one that renewed holds it for a
// full lease TTL more, long enough for its claims. The job's ID hashes
// its schedule and command, so a deploy in the middle of a slot, which
// keeps the job, does not run it again. A claim whose create failed is
// tried again as it was, and taken as this runner's if it was stored
// after all; a claimed job that no agent started is not tried again: a
// slot runs at most once, never twice.
//
// Slots missed while no runner led (all scheduler nodes down, or a lease
// still held by a dead node) are skipped, not run late in a burst: only
// the latest slot, within Window of its start, is ever due. Claims
// expire from the bucket after ClaimTTL; the record of each job's last
// run (APP.JOB.last) stays until the app is destroyed.
package cron
