#!/usr/bin/env bash
# Prints the path of CNCF Distribution's registry v3.0.0, the upstream of
# the sync tests: cached in ~/.cache/wharf-e2e or built there once
# (scripts/gotool.sh). The pinned version, not whatever `registry` is on
# PATH.
set -euo pipefail
GOTOOL_NO_PATH=1 exec "$(dirname "$0")/gotool.sh" \
	registry github.com/distribution/distribution/v3/cmd/registry "${DISTRIBUTION_VERSION:-v3.0.0}"
