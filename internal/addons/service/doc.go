// Package service is the service host: on a node, it runs the database
// servers (PostgreSQL and Redis) the addons role assigned to that node, and
// reports how they are doing.
//
// The addons role writes a skiff.Service under NODE.NAME in the services
// bucket; the host of that node watches its prefix. Each service gets a
// supervisor goroutine (server.go) that owns it from then on:
//
//	record written ──► volume Dir/NAME (0700, the service user's), port chosen
//	                   once and kept in Dir/NAME/port
//	               ──► engine prepares the volume (initdb once; config files
//	                   the platform owns, rewritten on every start)
//	               ──► server started as the service user   → status starting
//	               ──► it answers with the password          → status up
//	exits          ──► status failed (last output in Error), restarted after
//	                   1 s, doubling to 30 s; Restarts counts
//	record changed ──► restarted with the new settings, except a Redis
//	                   replica whose ReplicaOf is cleared: it is promoted in
//	                   place (REPLICAOF NO ONE), without a restart
//	record deleted ──► stopped, status deleted, volume removed
//	host stopping  ──► stopped cleanly, status failed ("stopped: the service
//	                   host … is stopping"), never deleted; the volume and
//	                   port stay for the next start
//
// A server's address (Addr:port) never changes once chosen: apps' config
// vars hold it. Ports come from PortMin-PortMax, apart from the agent's
// instance ports and the kernel's ephemeral ports, so nothing else takes
// a port while its server is down.
//
// The servers run as an unprivileged user (PostgreSQL refuses root), each
// in its own process group, with a parent-death signal so that none
// outlives the host. A server that an earlier life of the host left
// running on a volume (found by its pid file) is stopped before a new one
// starts on the same data.
//
// Addr is in every status once the port is chosen, whatever the state;
// State up says the server answers. A status in state failed whose
// server still runs (a refused password, no answer within StartTimeout)
// turns up when the server answers.
//
// A Redis replica authenticates to its primary with its own password:
// the addons role must give a replica its primary's password. It waits,
// in state starting, until its primary has reported an address.
//
// Engines (postgres.go, redis.go) hold what differs between the kinds:
// preparing the volume, probing readiness, and how to stop.
package service
