// Package backup captures, restores and verifies backups of the add-ons'
// PostgreSQL databases and Redis servers, and decides which backups a
// retention policy lets go.
//
// The addons role calls it with an add-on's URL; the package drives the
// usual tools as child processes and never puts a password in their argv
// (PostgreSQL tools get PGPASSWORD, redis-cli gets REDISCLI_AUTH, scratch
// servers read theirs from files of mode 0600).
//
// # Formats and what a backup holds
//
//	postgres  pg_dump custom format ("pg_dump-custom"); Contents are rows per
//	          table ("schema.table"), counted in the snapshot pg_dump dumps
//	redis     an RDB snapshot taken with redis-cli --rdb ("redis-rdb");
//	          Contents are keys per database ("db0"), counted by loading the
//	          snapshot into a scratch server
//
// # Capture, restore, verify
//
//	CapturePostgres  BEGIN REPEATABLE READ; pg_export_snapshot(); count rows;
//	                 pg_dump --snapshot while the transaction stays open
//	RestorePostgres  pg_restore --list (a dump it cannot read changes nothing),
//	                 then pg_restore --clean --single-transaction
//	CaptureRedis     redis-cli --rdb into TempDir; load into a scratch server
//	                 to count and to prove the snapshot loads; copy to w
//	RestoreRedis     load the snapshot into a scratch server, FLUSHALL the
//	                 target, copy every key with DUMP/PTTL -> RESTORE REPLACE
//	Verify           restore into a scratch server and compare its contents
//	                 with those counted at capture
//
// Scratch servers run on a free loopback port in a directory of their own
// under the directory the caller names; they run as an unprivileged OS user
// (Tools.User) when the process is root, because PostgreSQL refuses root and
// a backup is untrusted input. They stop when their stop func is called or
// their context ends; the stop func also removes their files.
//
// Redis counts are taken with the scratch server configured as a replica (of
// a port that never answers), because a replica keeps keys whose TTL has run
// out: the count of a snapshot is then the same whenever it is taken, and a
// snapshot verified a week after capture still matches.
//
// # Retention
//
// Expired is a pure function from an add-on's backups, the time and a Policy
// to the backups to delete; the caller deletes them.
package backup
