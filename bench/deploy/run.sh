#!/usr/bin/env bash
# Time from `skiff deploy` to the first 200 from the new release, for a
# small Python app, as a median over several deploys. Usage:
#   bash bench/deploy/run.sh [-n DEPLOYS]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/skiff ./cmd/skiff
go run ./bench/deploy -skiff bin/skiff "$@"
