#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against fresh wharf nodes
# and fails on any test that does not pass.
#
# Two runs:
#   1. every API and data option on (sparse manifests included) against a node
#      started with --sparse-manifests, which the sparse data needs;
#   2. every option but sparse data against a node with the default, strict
#      reference checks.
source "$(dirname "$0")/lib.sh"

CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
CONFORMANCE=$ROOT/bin/conformance

install_suite() {
	if [ ! -x "$CONFORMANCE" ]; then
		log "installing the conformance suite $CONFORMANCE_VERSION"
		GOBIN=$ROOT/bin go install "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE_VERSION"
	fi
}

# run_suite NAME PORT SPARSE [serve flags...]: a fresh node, then the suite.
run_suite() {
	local name=$1 port=$2 sparse=$3
	shift 3
	start_node "$name" "$port" "$@"
	CONFORMANCE_REGISTRY=127.0.0.1:$port run_conformance "$name" "$sparse"
	kill_node "$name"
}

# run_conformance NAME SPARSE: runs the suite against CONFORMANCE_REGISTRY.
run_conformance() {
	local name=$1 sparse=$2
	install_suite
	local results=$WORK/$name-results
	log "conformance run '$name' against $CONFORMANCE_REGISTRY (sparse data: $sparse)"
	set +e
	env OCI_REGISTRY="$CONFORMANCE_REGISTRY" OCI_TLS=disabled OCI_RESULTS_DIR="$results" \
		OCI_USERNAME="$ADMIN_USER" OCI_PASSWORD="$WHARF_ADMIN_PASSWORD" \
		OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 OCI_LOG=error \
		OCI_API_PULL=true OCI_API_PUSH=true \
		OCI_API_BLOBS_ATOMIC=true OCI_API_BLOBS_DELETE=true OCI_API_BLOBS_DIGEST_HEADER=true \
		OCI_API_BLOBS_MOUNT_ANONYMOUS=true OCI_API_BLOBS_UPLOAD_CANCEL=true \
		OCI_API_MANIFESTS_ATOMIC=true OCI_API_MANIFESTS_DELETE=true OCI_API_MANIFESTS_DIGEST_HEADER=true \
		OCI_API_MANIFESTS_TAG_PARAM=true OCI_API_TAGS_ATOMIC=true OCI_API_TAGS_DELETE=true \
		OCI_API_TAGS_LIST=true OCI_API_REFERRER=true \
		OCI_DATA_IMAGE=true OCI_DATA_INDEX=true OCI_DATA_INDEX_LIST=true OCI_DATA_SPARSE="$sparse" \
		OCI_DATA_ARTIFACT=true OCI_DATA_SUBJECT=true OCI_DATA_SUBJECT_MISSING=true \
		OCI_DATA_ARTIFACT_LIST=true OCI_DATA_SUBJECT_LIST=true OCI_DATA_DATA_FIELD=true \
		OCI_DATA_NONDISTRIBUTABLE=true OCI_DATA_CUSTOM_FIELDS=true OCI_DATA_NO_LAYERS=true \
		OCI_DATA_EMPTY_BLOB=true OCI_DATA_SHA512=true \
		"$CONFORMANCE" >"$WORK/$name-report.txt" 2>&1
	local rc=$?
	set -e
	summarize "$name" "$results/junit.xml" "$rc"
}

# summarize NAME JUNIT RC: prints the counts and fails unless every test passed.
summarize() {
	local name=$1 junit=$2 rc=$3
	[ -f "$junit" ] || { cat "$WORK/$name-report.txt" >&2; die "conformance run '$name' wrote no results"; }
	local head tests failures errors skipped disabled passed
	head=$(grep -m1 '<testsuites' "$junit")
	tests=$(attr tests "$head"); failures=$(attr failures "$head"); errors=$(attr errors "$head")
	skipped=$(attr skipped "$head"); disabled=$(attr disabled "$head")
	passed=$((tests - failures - errors - skipped - disabled))
	printf 'conformance %-8s %d tests: %d passed, %d failed, %d errors, %d skipped, %d disabled\n' \
		"$name" "$tests" "$passed" "$failures" "$errors" "$skipped" "$disabled"
	if [ "$rc" -ne 0 ] || [ "$failures" -ne 0 ] || [ "$errors" -ne 0 ] || [ "$skipped" -ne 0 ]; then
		grep -E 'FAIL|SKIP|ERROR|Error' "$WORK/$name-report.txt" | head -n 60 >&2 || true
		die "conformance run '$name' did not pass everything (exit $rc); report: $WORK/$name-report.txt"
	fi
}

attr() { local v; v=$(sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$2"); echo "${v:-0}"; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	build_wharf
	run_suite sparse 15101 true --sparse-manifests
	run_suite strict 15111 false
	echo "conformance: 2 runs passed, 0 failed"
fi
