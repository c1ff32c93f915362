#!/usr/bin/env bash
# Start time of an app process under the isolated driver's sandbox against
# a plain child process (the exec driver), and the memory an idle sandbox
# holds, with how many idle instances fit. Needs root. Usage:
#   bash bench/sandbox/run.sh [-n STARTS] [-idle INSTANCES]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/skiff-bench-sandbox ./bench/sandbox
exec bin/skiff-bench-sandbox "$@"
