#!/usr/bin/env bash
# Installs what Skiff needs to build, run and test on Debian 12, as root:
# Debian packages through apt-get, a Go toolchain if there is none, and the
# Go modules. It installs only what is missing, so running it again is fast.
set -euo pipefail
cd "$(dirname "$0")/.."

# Programs the platform runs (mksquashfs, git, bash), the toolchains its
# buildpacks use (python3 with venv, Node.js with npm; Go is below), and
# what the tests drive (curl, ssh, ssh-keygen; ip and nsenter for the hosts
# of the multi-host tests, which are network namespaces; chromium, headless,
# for the dashboard's test), and the servers of the add-ons with their tools
# (PostgreSQL: postgres, initdb, pg_dump, psql; Redis: redis-server, redis-cli).
packages=(squashfs-tools git curl ca-certificates python3 python3-venv python3-pip bash procps openssh-client unzip make iproute2 util-linux
	postgresql postgresql-client redis-server redis-tools chromium)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian (NodeSource, say), with its
# own npm: install Debian's only when there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: missing Debian packages: ${missing[*]}; run this as root, or install them with apt-get" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: the version go.mod asks for. A machine without Go gets the toolchain
# from the Go module proxy, the same place the modules come from.
want=$(awk '/^go /{print $2}' go.mod)
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
	echo "setup: installing Go $want from the Go module proxy"
	arch=$(dpkg --print-architecture)
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${want}.linux-${arch}.zip"
	unzip -q "$tmp/go.zip" -d "$tmp"
	rm -rf /usr/local/go
	mv "$tmp/golang.org/toolchain@v0.0.1-go${want}.linux-${arch}" /usr/local/go
	chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
	rm -rf "$tmp"
fi
go mod download

# Let's Encrypt's ACME test server and its DNS, which the router's ACME
# tests run on loopback (they are Go programs, from the Go module proxy).
pebble=v2.10.1
if [ ! -x bin/tools/pebble ] || [ ! -x bin/tools/pebble-challtestsrv ] || [ "$(cat bin/tools/.pebble 2>/dev/null)" != "$pebble" ]; then
	echo "setup: installing pebble $pebble"
	mkdir -p bin/tools
	GOBIN="$PWD/bin/tools" GOFLAGS=-mod=mod go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble" \
		"github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$pebble"
	echo "$pebble" > bin/tools/.pebble
fi
echo "setup: $(go version), dependencies in place"
