#!/usr/bin/env bash
# Prints the path of a cosign binary: cosign on PATH, else the one cached in
# ${XDG_CACHE_HOME:-~/.cache}/wharf-e2e, else one built there once with the Go
# module proxy (go install; minutes on two cores). Concurrent callers share
# one build: .ci/run starts this in the background, at low priority, so
# that the build overlaps the tests before e2e-manage, which then waits for
# it. Exits non-zero, saying why on stderr, when cosign cannot be had.
#
#   COSIGN_VERSION        the cosign to build (default v2.6.5)
#   COSIGN_BUILD_TIMEOUT  seconds the build may take (default 1200)
set -euo pipefail

version=${COSIGN_VERSION:-v2.6.5}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/wharf-e2e
cached=$cache/cosign-$version

if command -v cosign >/dev/null 2>&1; then
	command -v cosign
	exit 0
fi
mkdir -p "$cache/gobin"
exec 9>"$cache/build.lock"
flock 9 # one build at a time; a waiting caller then finds it cached
failed=$cache/failed-$version # a build that failed within the hour is not tried again
if [ ! -x "$cached" ] && [ -n "$(find "$failed" -mmin -60 2>/dev/null)" ]; then
	echo "cosign.sh: building cosign $version failed at $(date -r "$failed" -u +%FT%TZ) (log: $cache/build.log); not trying again within the hour" >&2
	exit 1
fi
if [ ! -x "$cached" ]; then
	echo "cosign.sh: building cosign $version into $cache (once; up to ${COSIGN_BUILD_TIMEOUT:-1200}s)" >&2
	if ! (cd "$cache" && GOBIN=$cache/gobin GOFLAGS=-buildvcs=false timeout "${COSIGN_BUILD_TIMEOUT:-1200}" \
		go install "github.com/sigstore/cosign/v2/cmd/cosign@$version") >"$cache/build.log" 2>&1; then
		echo "cosign.sh: go install of cosign $version failed (log: $cache/build.log):" >&2
		tail -n 5 "$cache/build.log" >&2 || true
		touch "$failed"
		exit 1
	fi
	mv "$cache/gobin/cosign" "$cached"
fi
echo "$cached"
