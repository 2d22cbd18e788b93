#!/usr/bin/env bash
# gotool.sh NAME PACKAGE VERSION: prints the path of a Go-built tool the
# tests use but the repository does not vendor: NAME on PATH, else the one
# cached in ${XDG_CACHE_HOME:-~/.cache}/wharf-e2e, else one built there once
# with the Go module proxy (go install PACKAGE@VERSION). Concurrent callers
# share one build (a lock per tool); a build that failed within the hour is not
# tried again. Exits non-zero, saying why on stderr, when the tool cannot
# be had.
#
#   GOTOOL_BUILD_TIMEOUT  seconds the build may take (default 1200)
#   GOTOOL_NO_PATH=1      ignore NAME on PATH (take the pinned version)
#   GOTOOL_ENV            extra environment for go install, e.g. GOFLAGS=...
set -euo pipefail

name=$1 pkg=$2 version=$3
cache=${XDG_CACHE_HOME:-$HOME/.cache}/wharf-e2e
cached=$cache/$name-$version

if [ -z "${GOTOOL_NO_PATH:-}" ] && command -v "$name" >/dev/null 2>&1; then
	command -v "$name"
	exit 0
fi
mkdir -p "$cache/gobin-$name"
exec 9>"$cache/build-$name.lock"
flock 9 # one build of this tool at a time; a waiting caller then finds it cached
failed=$cache/failed-$name-$version
log=$cache/build-$name.log
if [ ! -x "$cached" ] && [ -n "$(find "$failed" -mmin -60 2>/dev/null)" ]; then
	echo "gotool.sh: building $name $version failed at $(date -r "$failed" -u +%FT%TZ) (log: $log); not trying again within the hour" >&2
	exit 1
fi
if [ ! -x "$cached" ]; then
	echo "gotool.sh: building $name $version into $cache (once; up to ${GOTOOL_BUILD_TIMEOUT:-1200}s)" >&2
	# shellcheck disable=SC2086 # GOTOOL_ENV is a list of assignments
	if ! (cd "$cache" && env GOBIN="$cache/gobin-$name" GOFLAGS=-buildvcs=false ${GOTOOL_ENV:-} \
		timeout "${GOTOOL_BUILD_TIMEOUT:-1200}" go install "$pkg@$version") >"$log" 2>&1; then
		echo "gotool.sh: go install of $pkg@$version failed (log: $log):" >&2
		tail -n 5 "$log" >&2 || true
		touch "$failed"
		exit 1
	fi
	mv "$cache/gobin-$name/$(basename "$pkg")" "$cached"
fi
echo "$cached"
