#!/usr/bin/env bash
# Medians of git push builds (first build and a rebuild after a one-line
# change) of Go, Node.js, Python and Procfile-only apps. Usage:
#   bash bench/build/run.sh [-n ROUNDS] [-only go,node,python,procfile]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/skiff ./cmd/skiff
go run ./bench/build -skiff bin/skiff "$@"
