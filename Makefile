# wharf: `make run` starts a single-node registry on localhost:5001, `make
# test` runs every check CI runs. See README.md.

GO        ?= go
BIN       := $(CURDIR)/bin
# A count, not a duration: go1.26's fuzz coordinator can report a bare
# "context deadline exceeded" when a -fuzztime duration ends while a
# worker is busy (go.dev/issue/75804, fixed in go1.27); a count has no
# deadline to race. 50000 inputs take 5 to 10 s per target here.
FUZZTIME  ?= 50000x
BENCHTIME ?= 3x

BUF_VERSION          := v1.75.0
PROTOC_GEN_GO        := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_CONNECT   := connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
STATICCHECK          := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run build test lint unit fuzz conformance e2e e2e-auth e2e-cluster e2e-manage e2e-sync e2e-partition e2e-diskfull bench bench-listings bench-rss bench-cluster bench-sync generate clean
.PHONY: cluster e2e-make-cluster

# Where `make run` listens: loopback only, so that nothing is exposed to
# other machines; e.g. RUN_LISTEN=:5001 serves every interface.
RUN_LISTEN         ?= 127.0.0.1:5001
RUN_CLUSTER_LISTEN ?= 127.0.0.1:5002

## run: build bin/wharf and start one node on $(RUN_LISTEN) (loopback only) with
## its data in ./wharf-data; the first start prints the admin password and how
## to log in with bin/wharf
run:
	@echo "==> building bin/wharf (the first build compiles every dependency: a few minutes)"
	$(GO) build -o $(BIN)/wharf ./cmd/wharf
	@echo "==> starting bin/wharf serve on $(RUN_LISTEN) (cluster port $(RUN_CLUSTER_LISTEN)); stop it with Ctrl-C"
	$(BIN)/wharf serve --listen $(RUN_LISTEN) --cluster-listen $(RUN_CLUSTER_LISTEN)

# Where `make cluster` keeps its nodes' data and logs, and its balancer's
# port (the nodes use the next ports, see scripts/cluster.sh).
CLUSTER_DIR  ?= $(CURDIR)/wharf-cluster
CLUSTER_PORT ?= 5100

## cluster: build bin/wharf and run three nodes behind haproxy on this machine,
## on loopback (haproxy on localhost:$(CLUSTER_PORT)), printing the URLs and how
## to log in; Ctrl-C stops them, and the next run starts the same cluster again
cluster:
	CLUSTER_DIR=$(CLUSTER_DIR) CLUSTER_PORT=$(CLUSTER_PORT) scripts/cluster.sh

## build: build bin/wharf
build:
	$(GO) build -o $(BIN)/wharf ./cmd/wharf

## test: everything CI checks
test: lint unit fuzz conformance e2e e2e-cluster e2e-manage e2e-sync e2e-partition e2e-diskfull e2e-make-cluster

## lint: gofmt, go vet and staticcheck must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## unit: unit, integration and crash tests of every package
unit:
	$(GO) test -count=1 -timeout 15m ./...

## fuzz: run each fuzz target briefly (FUZZTIME inputs each)
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseManifest$$' -fuzztime=$(FUZZTIME) ./api/oci
	$(GO) test -run='^$$' -fuzz='^FuzzParseReference$$' -fuzztime=$(FUZZTIME) ./api/oci
	$(GO) test -run='^$$' -fuzz='^FuzzParseContentRange$$' -fuzztime=$(FUZZTIME) ./api/oci
	$(GO) test -run='^$$' -fuzz='^FuzzParseScope$$' -fuzztime=$(FUZZTIME) ./api/auth
	$(GO) test -run='^$$' -fuzz='^FuzzParseAuthorization$$' -fuzztime=$(FUZZTIME) ./api/auth
	$(GO) test -run='^$$' -fuzz='^FuzzParseTokenForm$$' -fuzztime=$(FUZZTIME) ./api/auth
	$(GO) test -run='^$$' -fuzz='^FuzzFailureNotice$$' -fuzztime=$(FUZZTIME) ./api/auth
	$(GO) test -run='^$$' -fuzz='^FuzzParseNodeList$$' -fuzztime=$(FUZZTIME) ./blobstore/peer
	$(GO) test -run='^$$' -fuzz='^FuzzParseStoredContent$$' -fuzztime=$(FUZZTIME) ./api/admin
	$(GO) test -run='^$$' -fuzz='^FuzzValidateTagPattern$$' -fuzztime=$(FUZZTIME) ./fsm
	$(GO) test -run='^$$' -fuzz='^FuzzCheckMirror$$' -fuzztime=$(FUZZTIME) ./fsm
	$(GO) test -run='^$$' -fuzz='^FuzzParseRetryAfter$$' -fuzztime=$(FUZZTIME) ./cluster/remotesync
	$(GO) test -run='^$$' -fuzz='^FuzzFilter$$' -fuzztime=$(FUZZTIME) ./cluster/remotesync

## conformance: the OCI distribution-spec conformance suite; any failure fails
conformance:
	scripts/conformance.sh

## e2e: real podman and skopeo against a real node, with a crash mid-push, and access control
e2e: e2e-auth
	scripts/e2e-podman.sh

## e2e-auth: podman login, roles, namespace creation, public pulls, API tokens
e2e-auth:
	scripts/e2e-auth.sh

## e2e-cluster: three nodes behind haproxy: podman, conformance, kill -9
e2e-cluster:
	scripts/e2e-cluster.sh

## e2e-manage: three nodes behind haproxy: push with podman and skopeo, sign
## with cosign, wharf tag rm and image rm, garbage collection on every node's
## disk, readme, activity, exit codes; the first run builds cosign into
## ~/.cache/wharf-e2e (a signature pushed with curl stands in, loudly, if it
## cannot); the session log's path is printed at the end
e2e-manage:
	scripts/e2e-manage.sh

## e2e-sync: mirrored repositories on three nodes behind haproxy, from a
## wharf upstream: CLI, podman, incremental syncs, kill -9 of a job's node,
## the leader killed before a scheduled run
e2e-sync:
	scripts/e2e-sync.sh

## e2e-partition: three nodes in network namespaces (root); cut one off, heal it
e2e-partition:
	scripts/e2e-partition.sh

## e2e-diskfull: a node on a 300 MiB tmpfs (root): podman pushes until the
## reserve refuses them with 507, the disk fills, deletions free it again
e2e-diskfull:
	scripts/e2e-diskfull.sh

## e2e-make-cluster: make cluster started, logged in to, pushed to and pulled
## from through haproxy, then stopped with Ctrl-C (SIGINT): every process ends
e2e-make-cluster:
	scripts/e2e-make-cluster.sh

## bench: storage and HTTP benchmarks (WHARF_BENCH_LARGE=1 adds 1 GiB blobs)
bench:
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) ./blobstore ./api/...

## bench-listings: pages of the management API (issue 13's goal: p99 < 20 ms
## per page of 100): the FSM's listings with 10k repositories, 100k tags and
## 100k activity records, then the same through a real node's Connect API
bench-listings:
	$(GO) test -run='^$$' -bench='^BenchmarkList' -benchtime=2000x -timeout 30m ./fsm
	$(GO) test -run='^$$' -bench='^BenchmarkAdminListings$$' -benchtime=500x -timeout 30m ./cmd/wharf

## bench-sync: a 1 GiB image synced from CNCF Distribution into a node,
## against skopeo sync (to a directory) and skopeo copy (into the node), and
## an incremental sync of 10,000 unchanged tags
bench-sync:
	$(GO) test -run='^$$' -bench=SyncVsSkopeo -benchtime=2x -timeout 30m ./cmd/wharf/
	$(GO) test -run='^$$' -bench=SyncUnchanged10kTags -benchtime=1x -timeout 30m ./cluster/remotesync/

## bench-rss: peak RSS of a node while a 1 GiB blob is pushed in one PATCH
bench-rss:
	scripts/bench-rss.sh

## bench-cluster: 3 nodes (R=3 W=2) behind haproxy against a lone node, each
## node in a cgroup limited to BENCH_CPUS (0.5) CPUs; root
bench-cluster:
	BENCHTIME=$(BENCHTIME) scripts/bench-cluster.sh

## generate: regenerate Go code from the .proto files with buf (api/proto,
## fsm/fsmpb, cluster/clusterpb; see buf.yaml)
generate:
	GOBIN=$(BIN) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(BIN) $(GO) install $(PROTOC_GEN_CONNECT)
	PATH=$(BIN):$$PATH $(GO) run github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) generate

clean:
	rm -rf $(BIN) wharf-data wharf-cluster
