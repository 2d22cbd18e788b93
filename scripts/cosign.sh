#!/usr/bin/env bash
# Prints the path of a cosign binary: cosign on PATH, else the one cached in
# ${XDG_CACHE_HOME:-~/.cache}/wharf-e2e, else one built there once with the Go
# module proxy (scripts/gotool.sh; minutes on two cores). .ci/run starts
# this in the background, at low priority, so that the build overlaps the
# tests before e2e-manage, which then waits for it.
#
#   COSIGN_VERSION        the cosign to build (default v2.6.5)
#   COSIGN_BUILD_TIMEOUT  seconds the build may take (default 1200)
set -euo pipefail
GOTOOL_BUILD_TIMEOUT=${COSIGN_BUILD_TIMEOUT:-1200} exec "$(dirname "$0")/gotool.sh" \
	cosign github.com/sigstore/cosign/v2/cmd/cosign "${COSIGN_VERSION:-v2.6.5}"
