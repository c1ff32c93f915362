#!/usr/bin/env bash
# The multi-host test, several times, with the medians of its figures:
# node death, partition, pause, drain, bus node and scheduler leader
# deaths. Needs root (network namespaces). Usage:
#   bash bench/cluster/run.sh [-n RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
go run ./bench/cluster "$@"
