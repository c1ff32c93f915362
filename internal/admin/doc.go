// Package admin moves the platform's state from one installation to
// another: Export writes it to a single file, Import reads such a file into
// a fresh installation, after which the apps serve there as they did. It is
// how a single node becomes a cluster, since JetStream does not carry a
// standalone server's streams into a cluster by itself.
//
// # What is carried
//
// The key-value buckets that are state: apps, releases, config, formation,
// domains, certs, tokens, keys, uids and acme (specs, in format.go, says
// how each is treated), and the slugs object store, which holds every
// release's image. Left behind, because the target rebuilds them or they
// do not outlive a deploy: the assignments, instances, nodes and locks
// buckets (the target's scheduler places each app's current release again
// from apps, releases and formation), the sources object store (uploads,
// deleted once built), build caches and git repositories (on the disks of
// the builder and ssh roles, not in the bus; the next build starts cold and
// the next git push fills the repository), the cron bucket (claims that
// expire, and last runs), and the LOGS, EVENTS and USAGE streams. A
// bucket or object store this package does not know is left behind with a
// warning in the manifest; a test keeps the lists in step with store.Open.
//
// # The file
//
// An export is a tar stream (Import also takes it gzipped):
//
//	manifest.json               Manifest: format version, Skiff version, time,
//	                            counts, and the size and SHA-256 of every entry
//	kv/<bucket>/<key>           one record, JSON
//	…
//	objects/slugs/<name>        one image, its bytes
//	…
//
// The manifest comes first, so that Import knows every checksum before it
// reads a byte of data. Records are smaller than objects and come before
// them; objects are streamed, never held in memory.
//
// Values sealed with the platform's secret key (config vars, the config of
// each release, certificates' private keys, the ACME client's cache) are
// written opened, since the target has a key of its own and seals them
// again: an export file is a secret. Export's callers write it with mode
// 0600.
//
// # Import
//
// Import goes into a fresh installation only: it refuses a target that has
// apps or any other app state (CheckTarget), so that two states are never
// mixed. Tokens and SSH keys are added to the target's own (its admin token
// keeps working, and so do the imported ones); a record the target holds
// with another value is a conflict that stops the import.
//
// Import reads the whole file before it writes a record: records are kept
// in memory until the end, and each is checked against its checksum; each
// object is checked as it streams into the target's slugs store, and one
// that does not match is never stored (its partial chunks are purged).
// Only when every entry of the manifest has been read and matched are the
// records written, apps last, so that the scheduler sees an app only with
// its releases and formation. If anything fails, what was written is
// deleted again.
package admin
