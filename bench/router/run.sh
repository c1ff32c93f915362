#!/usr/bin/env bash
# The Skiff router against nginx and HAProxy, on the same backend in the
# same run: throughput and latency with one host and with 10,000 hosts in
# the table, latency added at a fixed rate, backend churn, and the router's
# memory after a million route changes. See bench/router/README.md.
# Installs nginx, HAProxy, wrk and curl from Debian's packages if missing (root).
# Usage:
#   bash bench/router/run.sh
#   DURATION=5 ROUNDS=1 SCENARIOS=base,latency bash bench/router/run.sh
# Settings (environment, defaults in brackets):
#   DURATION [10]   seconds of each measured wrk or load run
#   WARMUP [1]      seconds of unmeasured load before each run
#   ROUNDS [5]      rounds of each scenario, targets interleaved; medians printed
#   THREADS [2] CONNS [64]   wrk's -t and -c (the load generator's too)
#   HOSTS [10000] BACKENDS [3]   the large table: apps, and web instances each
#   HOSTS_ACTIVE [1000]  hosts of the large table wrk cycles through, spread over it
#   HOT_HOSTS [100]  hosts that carry the load in the churn scenario
#   CHURN_RATE [1000] CHURN_SECONDS [60]   backend changes per second, and for how long
#   CONTROL_SECONDS [15]   the same churn with nginx, which ignores it: what the bus costs
#   SOAK_CHANGES [1000000]   route changes before the memory is measured again
#   SCENARIOS [base,latency,hosts,churn,soak]   which parts to run
#   PROFILE []      a directory: CPU profiles of the router's wrk runs are saved there
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
HOSTS=${HOSTS:-10000}
BACKENDS=${BACKENDS:-3}
HOSTS_ACTIVE=${HOSTS_ACTIVE:-1000}
HOT_HOSTS=${HOT_HOSTS:-100}
CHURN_RATE=${CHURN_RATE:-1000}
CHURN_SECONDS=${CHURN_SECONDS:-60}
CONTROL_SECONDS=${CONTROL_SECONDS:-15}
SOAK_CHANGES=${SOAK_CHANGES:-1000000}
SOAK_LOAD_RATE=${SOAK_LOAD_RATE:-1000}
SCENARIOS=${SCENARIOS:-base,latency,hosts,churn,soak}
PROFILE=${PROFILE:-}
CORES=$(nproc)
DOMAIN=bench.test
# Enough descriptors for every connection, within what the system allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
MAXCONN=$(( ($(ulimit -n) - 100) / 2 ))
((MAXCONN <= 10000)) || MAXCONN=10000

want() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
log() { printf '%s\n' "$*" >&2; }
die() { log "bench/router: $*"; exit 1; }

# --- what the benchmark needs ---------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
	[[ $EUID == 0 ]] || die "needs ${need[*]}: run as root to install them, or install them first"
	log "installing ${need[*]} from Debian's packages"
	# Keep the packages from starting their system services: the
	# benchmark runs its own nginx and HAProxy on ports of its choosing.
	added_policy=
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		added_policy=1
	fi
	apt-get update -qq || log "apt-get update failed; trying the package lists at hand"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	[[ -z $added_policy ]] || rm -f /usr/sbin/policy-rc.d
fi

# --- processes and temporary files, all gone on exit ----------------------
TMP=$(mktemp -d /tmp/skiff-bench-router.XXXXXX)
chmod 755 "$TMP" # nginx's workers may run as another user
# The bus fsyncs every write; on tmpfs that costs nothing, so the churn
# measures the router and not the disk.
if [[ -d /dev/shm && -w /dev/shm ]]; then BUSDIR=$(mktemp -d /dev/shm/skiff-bench-bus.XXXXXX); else BUSDIR=$TMP/bus; fi
declare -A PIDS=()
cleanup() {
	local name
	for name in "${!PIDS[@]}"; do kill "${PIDS[$name]}" 2>/dev/null || true; done
	for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" 2>/dev/null || true; done
	rm -rf "$TMP" "$BUSDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, output in $TMP/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PIDS[$name]=$!
}
stop() {
	[[ -n ${PIDS[$1]:-} ]] || return 0
	kill "${PIDS[$1]}" 2>/dev/null || true
	wait "${PIDS[$1]}" 2>/dev/null || true
	unset "PIDS[$1]"
}
# wait_for FILE NAME: waits until process NAME has written FILE.
wait_for() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ -s $1 ]] && return 0
		kill -0 "${PIDS[$2]}" 2>/dev/null || die "$2 exited: $(tail -5 "$TMP/$2.log")"
		sleep 0.1
	done
	die "$2 did not write $1 within 60s"
}
# wait_http ADDR HOST NAME: waits until ADDR answers 200 for Host HOST.
wait_http() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $2" "http://$1/" || true) == 200 ]] && return 0
		kill -0 "${PIDS[$3]}" 2>/dev/null || die "$3 exited: $(tail -5 "$TMP/$3.log")"
		sleep 0.1
	done
	die "$3 at $1 did not answer 200 for $2 within 60s"
}

log "building"
BIN=$TMP/skiff-bench-router
go build -o "$BIN" ./bench/router
RESULTS=$TMP/results
mkdir -p "$RESULTS"

# --- backend, bus, router -------------------------------------------------
start backend "$BIN" backend -ports 3 -addrs-file "$TMP/backend.addrs"
wait_for "$TMP/backend.addrs" backend
mapfile -t BACKEND_ADDRS <"$TMP/backend.addrs"
ADDRS=$(IFS=,; echo "${BACKEND_ADDRS[*]}")
DIRECT=${BACKEND_ADDRS[0]}

start bus "$BIN" bus -dir "$BUSDIR" -info-file "$TMP/bus.info"
wait_for "$TMP/bus.info" bus
"$BIN" seed -bus-file "$TMP/bus.info" -apps 1 -backends "$BACKENDS" -addrs "$ADDRS" -domain $DOMAIN -hosts-file "$TMP/hosts.one"
HOST=app0.$DOMAIN
start_router() {
	stop router
	rm -f "$TMP/router.addr" "$TMP/router.debug"
	start router "$BIN" router -bus-file "$TMP/bus.info" -domain $DOMAIN -addr-file "$TMP/router.addr" -debug-file "$TMP/router.debug"
	wait_for "$TMP/router.addr" router
	ROUTER=$(<"$TMP/router.addr")
	DEBUG=$(<"$TMP/router.debug")
	wait_http "$ROUTER" $HOST router
}
start_router

# --- nginx and HAProxy, with configs equivalent to the router's work -------
read -r NGINX_PORT HAPROXY_PORT < <("$BIN" freeport -n 2 | paste -sd' ')
NGINX=127.0.0.1:$NGINX_PORT
HAPROXY=127.0.0.1:$HAPROXY_PORT

# proxy_configs HOSTSFILE: writes nginx.conf and haproxy.cfg that route
# the hosts in HOSTSFILE to the backends and answer 404 to others.
proxy_configs() {
	local hosts=$1 a
	mkdir -p "$TMP/nginx"
	{
		cat <<-EOF
			worker_processes $CORES;
			pid $TMP/nginx/nginx.pid;
			error_log $TMP/nginx/error.log warn;
			daemon off;
			events { worker_connections $MAXCONN; }
			http {
			    access_log off;
			    client_body_temp_path $TMP/nginx/body;
			    proxy_temp_path $TMP/nginx/proxy;
			    fastcgi_temp_path $TMP/nginx/fastcgi;
			    uwsgi_temp_path $TMP/nginx/uwsgi;
			    scgi_temp_path $TMP/nginx/scgi;
			    keepalive_timeout 120s;
			    keepalive_requests 1000000;
			    server_names_hash_max_size 65536;
			    server_names_hash_bucket_size 128;
			    upstream backend {
		EOF
		for a in "${BACKEND_ADDRS[@]}"; do echo "        server $a;"; done
		cat <<-EOF
			        keepalive 256;
			        keepalive_requests 1000000;
			        keepalive_timeout 120s;
			    }
			    server {
			        listen $NGINX default_server;
			        return 404;
			    }
			    server {
			        listen $NGINX;
		EOF
		sed 's/.*/        server_name &;/' "$hosts"
		cat <<-EOF
			        location / {
			            proxy_pass http://backend;
			            proxy_http_version 1.1;
			            proxy_set_header Connection "";
			            proxy_set_header Host \$http_host;
			            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			            proxy_set_header X-Forwarded-Proto \$scheme;
			            proxy_set_header X-Forwarded-Host \$http_host;
			            proxy_set_header X-Forwarded-Port \$server_port;
			            proxy_set_header X-Request-Id \$request_id;
			            proxy_set_header X-Request-Start "t=\${msec}";
			        }
			    }
			}
		EOF
	} >"$TMP/nginx.conf"
	sed 's/.*/& backend/' "$hosts" >"$TMP/haproxy.map"
	{
		cat <<-EOF
			global
			    nbthread $CORES
			    maxconn $MAXCONN
			defaults
			    mode http
			    option http-keep-alive
			    http-reuse always
			    timeout connect 5s
			    timeout client 120s
			    timeout server 120s
			    timeout http-keep-alive 120s
			    timeout http-request 30s
			frontend web
			    bind $HAPROXY
			    option forwardfor
			    http-request set-header X-Forwarded-Proto http
			    http-request set-header X-Forwarded-Host %[req.hdr(host)]
			    http-request set-header X-Forwarded-Port %[dst_port]
			    http-request set-header X-Request-Id %[uuid()]
			    http-request set-header X-Request-Start t=%[date(0,ms)]
			    use_backend %[req.hdr(host),lower,map($TMP/haproxy.map)]
			    default_backend notfound
			backend notfound
			    http-request return status 404
			backend backend
			    balance roundrobin
		EOF
		local i=0
		for a in "${BACKEND_ADDRS[@]}"; do echo "    server s$((i++)) $a"; done
	} >"$TMP/haproxy.cfg"
}
start_proxies() {
	stop nginx
	stop haproxy
	proxy_configs "$1"
	nginx -t -q -p "$TMP/nginx" -c "$TMP/nginx.conf" 2>"$TMP/nginx-check.log" || die "nginx config: $(cat "$TMP/nginx-check.log")"
	start nginx nginx -p "$TMP/nginx" -c "$TMP/nginx.conf"
	start haproxy haproxy -db -f "$TMP/haproxy.cfg"
	local h
	h=$(head -1 "$1")
	wait_http "$NGINX" "$h" nginx
	wait_http "$HAPROXY" "$h" haproxy
}

addr_of() {
	case $1 in
	direct) echo "$DIRECT" ;;
	nginx) echo "$NGINX" ;;
	haproxy) echo "$HAPROXY" ;;
	router) echo "$ROUTER" ;;
	esac
}

# Cycles wrk through the hostnames of a file, each thread from its own place.
cat >"$TMP/hosts.lua" <<'EOF'
local reqs, n, i, threads = {}, 0, 0, 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  for host in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("GET", "/", {Host = host})
  end
  i = (id * 7919) % n
end
function request()
  i = i % n + 1
  return reqs[i]
end
EOF

CLK_TCK=$(getconf CLK_TCK)
# ticks NAME: CPU ticks (user and system) that process NAME and its child
# processes (nginx's workers) have used so far.
ticks() {
	local pid total=0 t
	for pid in ${PIDS[$1]} $(pgrep -P "${PIDS[$1]}" || true); do
		t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || t=0
		total=$((total + ${t:-0}))
	done
	echo $total
}
# measured OUT CMD...: runs CMD, its output to OUT, and appends to OUT the
# CPU ticks each of the benchmark's processes used meanwhile (cpu_NAME=).
measured() {
	local out=$1 n d
	shift
	local -A t0=()
	for n in "${!PIDS[@]}"; do t0[$n]=$(ticks "$n"); done
	"$@" >"$out"
	for n in "${!t0[@]}"; do
		d=$(($(ticks "$n") - ${t0[$n]}))
		((d < 0)) || echo "cpu_$n=$d"
	done >>"$out"
}

# wrk_run OUT SECONDS ADDR [HOSTSFILE]: a warm-up, then a measured run,
# with Host: $HOST or cycling through the hostnames in HOSTSFILE.
wrk_run() {
	local out=$1 secs=$2 url=http://$3/ hosts=${4:-}
	local args=(-t"$THREADS" -c"$CONNS") after=()
	if [[ -n $hosts ]]; then
		args+=(-s "$TMP/hosts.lua")
		after=(-- "$hosts")
	else
		args+=(-H "Host: $HOST")
	fi
	if ((WARMUP > 0)); then wrk "${args[@]}" -d"$WARMUP"s "$url" "${after[@]}" >/dev/null; fi
	local prof=
	if [[ -n $PROFILE && $3 == "$ROUTER" ]] && ((secs > 2)); then
		# A CPU profile of the router over the measured run but its last second.
		mkdir -p "$PROFILE"
		curl -s -o "$PROFILE/$(basename "$(dirname "$out")").$(basename "$out" .wrk).pprof" \
			"http://$DEBUG/debug/pprof/profile?seconds=$((secs - 1))" &
		prof=$!
	fi
	measured "$out" wrk "${args[@]}" -d"$secs"s --latency "$url" "${after[@]}"
	[[ -z $prof ]] || wait "$prof" || true
}
# rotated ROUND TARGET...: the targets, each round starting one further on,
# so that a machine slowing down or speeding up during a round (other work
# on a shared machine) does not always fall on the same target.
rotated() {
	local r=$1
	shift
	local n=$# i
	local all=("$@")
	for ((i = 0; i < n; i++)); do echo "${all[(i + r - 1) % n]}"; done
}
# progress LABEL FILE: prints the figures of one run.
progress() { printf '  %-22s %s\n' "$1" "$("$BIN" report -line "$2")" >&2; }

cat >"$RESULTS/meta" <<EOF
cores=$CORES
clk_tck=$CLK_TCK
when=$(date -u '+%Y-%m-%d %H:%M UTC')
nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')
haproxy=$(haproxy -v | head -1 | awk '{print $3}')
wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')
go=$(go version | awk '{print $3}')
threads=$THREADS
conns=$CONNS
duration=$DURATION
warmup=$WARMUP
rounds=$ROUNDS
hosts=$HOSTS
hosts_active=$HOSTS_ACTIVE
backends=$((HOSTS * BACKENDS))
hot_hosts=$HOT_HOSTS
churn_rate=$CHURN_RATE
churn_seconds=$CHURN_SECONDS
control_seconds=$CONTROL_SECONDS
soak_load_rate=$SOAK_LOAD_RATE
EOF

start_proxies "$TMP/hosts.one"

# --- one host ---------------------------------------------------------------
if want base || want latency; then
	log "one host: wrk -t$THREADS -c$CONNS -d${DURATION}s against the backend, nginx, HAProxy and the router, $ROUNDS rounds"
	mkdir -p "$RESULTS/base"
	for ((r = 1; r <= ROUNDS; r++)); do
		for t in $(rotated $r direct nginx haproxy router); do
			wrk_run "$RESULTS/base/$t.$r.wrk" "$DURATION" "$(addr_of $t)"
			progress "$t, round $r" "$RESULTS/base/$t.$r.wrk"
		done
	done
fi

# --- latency added at half of nginx's peak rate -------------------------------
if want latency; then
	rate=$("$BIN" report -nginx-half "$RESULTS")
	echo "latency_rate=$rate" >>"$RESULTS/meta"
	log "added latency: $rate req/s (half of nginx's peak) from $CONNS connections, $ROUNDS rounds"
	mkdir -p "$RESULTS/latency"
	for ((r = 1; r <= ROUNDS; r++)); do
		for t in $(rotated $r direct nginx router); do
			measured "$RESULTS/latency/$t.$r.load" "$BIN" load -target "$(addr_of $t)" -host $HOST -rate "$rate" -c "$CONNS" -d "${DURATION}s" -warmup "${WARMUP}s"
			progress "$t, round $r" "$RESULTS/latency/$t.$r.load"
		done
	done
fi

# --- the large table ----------------------------------------------------------
if want hosts || want churn || want soak; then
	log "seeding $HOSTS apps with $BACKENDS web instances each"
	cp "$TMP/hosts.one" "$TMP/hosts.all"
	"$BIN" seed -bus-file "$TMP/bus.info" -from 1 -apps $((HOSTS - 1)) -backends "$BACKENDS" -addrs "$ADDRS" -domain $DOMAIN -hosts-file "$TMP/hosts.all"
	wait_http "$ROUTER" "app$((HOSTS - 1)).$DOMAIN" router
	head -n "$HOT_HOSTS" "$TMP/hosts.all" >"$TMP/hosts.hot"
	awk -v step=$((HOSTS / HOSTS_ACTIVE > 1 ? HOSTS / HOSTS_ACTIVE : 1)) 'NR % step == 1 || step == 1' "$TMP/hosts.all" >"$TMP/hosts.active"
fi
if want hosts || want churn; then
	start_proxies "$TMP/hosts.all"
fi
if want hosts; then
	log "$HOSTS hosts: wrk cycling through $(wc -l <"$TMP/hosts.active") of them, $ROUNDS rounds"
	mkdir -p "$RESULTS/hosts"
	for ((r = 1; r <= ROUNDS; r++)); do
		for t in $(rotated $r nginx haproxy router); do
			wrk_run "$RESULTS/hosts/$t.$r.wrk" "$DURATION" "$(addr_of $t)" "$TMP/hosts.active"
			progress "$t, round $r" "$RESULTS/hosts/$t.$r.wrk"
		done
	done
fi
stop haproxy

# --- churn --------------------------------------------------------------------
# churn_run NAME TARGET SECONDS [CHURN FLAGS...]: wrk on the hot hosts through
# TARGET for SECONDS without changes (NAME.no.wrk), then as long with the
# churn (NAME.wrk, and the churn's figures in NAME.out).
churn_run() {
	local name=$1 addr secs=$3
	addr=$(addr_of "$2")
	shift 3
	wrk_run "$RESULTS/churn/$name.no.wrk" "$secs" "$addr" "$TMP/hosts.hot"
	progress "$name, without churn" "$RESULTS/churn/$name.no.wrk"
	rm -f "$TMP/churn.ready"
	start churn "$BIN" churn -bus-file "$TMP/bus.info" -apps "$HOSTS" -backends "$BACKENDS" -addrs "$ADDRS" \
		-domain $DOMAIN -rate "$CHURN_RATE" -d "${secs}s" -ready-file "$TMP/churn.ready" "$@"
	wait_for "$TMP/churn.ready" churn
	WARMUP=0 wrk_run "$RESULTS/churn/$name.wrk" "$secs" "$addr" "$TMP/hosts.hot"
	wait "${PIDS[churn]}" || die "churn failed: $(tail -5 "$TMP/churn.log")"
	unset "PIDS[churn]"
	cp "$TMP/churn.log" "$RESULTS/churn/$name.out"
	progress "$name, with churn" "$RESULTS/churn/$name.wrk"
}
if want churn; then
	mkdir -p "$RESULTS/churn"
	log "churn: the router ${CHURN_SECONDS}s without changes, then ${CHURN_SECONDS}s with $CHURN_RATE changes/s, wrk on $HOT_HOSTS hosts"
	churn_run router router "$CHURN_SECONDS" -router "$ROUTER"
	grep -E '^(changes|rate|live_p99_ms)=' "$RESULTS/churn/router.out" | paste -sd' ' >&2
	# The control: nginx, which does not follow the changes, under the same
	# churn, with the router stopped. What nginx loses is what the bus and
	# the churn driver take from the machine.
	log "churn control: nginx ${CONTROL_SECONDS}s without, ${CONTROL_SECONDS}s with the same changes, the router stopped"
	stop router
	churn_run nginx nginx "$CONTROL_SECONDS" -router 127.0.0.1:1 -probe-apps 0
	start_router
fi
stop nginx

# --- a million route changes ----------------------------------------------------
if want soak; then
	mkdir -p "$RESULTS/soak"
	log "soak: $SOAK_CHANGES route changes as fast as the bus takes them, $SOAK_LOAD_RATE req/s steady on $HOT_HOSTS hosts"
	"$BIN" churn -bus-file "$TMP/bus.info" -apps "$HOSTS" -backends "$BACKENDS" -addrs "$ADDRS" \
		-router "$ROUTER" -domain $DOMAIN -rate 0 -changes "$SOAK_CHANGES" -stats-every $((SOAK_CHANGES / 4)) -probe-rate 5 -debug "$DEBUG" \
		-load-hosts-file "$TMP/hosts.hot" -load-rate "$SOAK_LOAD_RATE" >"$RESULTS/soak/soak.out"
	grep -E '^(changes|elapsed_s|before_rss|after_rss|before_goroutines|after_goroutines)=' "$RESULTS/soak/soak.out" | paste -sd' ' >&2
fi

# --- summary ------------------------------------------------------------------------
SAVED=bench/results/router/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$SAVED"
cp -r "$RESULTS"/. "$SAVED"/
echo
"$BIN" report "$RESULTS" | tee "$SAVED/summary.txt"
log "raw results: $SAVED"
