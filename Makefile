# sipedge build, test and run targets. `make run` and `make test` are the two
# commands a fresh machine needs; both install what they use.

GO        ?= go
BIN       := bin
CONFIG    ?= examples/sipedge.yaml
APT_GET   := DEBIAN_FRONTEND=noninteractive apt-get
# Debian packages `make generate` needs to rebuild the BPF objects (the tests
# need them too: they check the committed objects match bpf/).
GEN_PKGS  := clang llvm libbpf-dev
# TEST_DEPS is every command the tests run, as COMMAND:DEBIAN-PACKAGE: SIPp as
# the peer, bpftool to read pins, iproute2/ethtool for the namespace topology,
# kamailio as the oracle, util-linux/mount for namespaces and mounts (nsenter,
# unshare, mountpoint, setpriv; taskset and chrt in bench), script for the
# README tour's terminal. tests/deps_test.go checks that every command a test
# asks for (testutil.NeedCommand) is listed here; test-deps installs the
# packages of whichever is missing.
TEST_DEPS := sipp:sip-tester bpftool:bpftool ip:iproute2 nstat:iproute2 \
	ethtool:ethtool kamailio:kamailio clang:clang llvm-strip:llvm \
	nsenter:util-linux unshare:util-linux setpriv:util-linux \
	mountpoint:util-linux taskset:util-linux chrt:util-linux \
	mount:mount umount:mount script:bsdutils sysctl:procps bash:bash git:git

.PHONY: all build run test test-deps test-unit test-integration generate generate-check lint bench fuzz fuzz-short clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

run: build
	./$(BIN)/sipedge -c $(CONFIG)

# test-deps installs only what is missing, so a warm machine pays nothing.
# Commands in /usr/sbin or /sbin count even when they are not on PATH.
test-deps:
	@missing=""; \
	for dep in $(TEST_DEPS); do \
		cmd=$${dep%%:*}; pkg=$${dep#*:}; \
		command -v $$cmd >/dev/null || [ -x /usr/sbin/$$cmd ] || [ -x /sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	[ -e /usr/include/bpf/bpf_helpers.h ] || missing="$$missing libbpf-dev"; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(GO) mod download

test: test-deps lint generate-check fuzz-short
	$(GO) test -race -count=1 -timeout 20m ./...

test-unit:
	$(GO) test -count=1 ./userspace/... ./cmd/...

test-integration: test-deps build
	$(GO) test -count=1 -v -timeout 20m ./tests/...

generate:
	@command -v clang >/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $(GEN_PKGS) >/dev/null; }
	$(GO) generate ./userspace/dataplane/

# generate-check fails when the committed bpf2go output is older than bpf/.
generate-check:
	$(GO) test -count=1 -run TestGeneratedObjectsCurrent ./userspace/dataplane/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfe[lb].go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./userspace/sipproxy/ ./userspace/sipmsg/ ./userspace/dispatch/
	$(GO) test -run '^$$' -bench . -benchtime 30000x ./userspace/probe/
	$(GO) test -run '^$$' -bench . ./bench/

# The fuzz targets: the SIP scanner, the slow path's handling of one
# datagram, its stateful (failover-mode) handling of a sequence of them,
# the probe engine's reply matching, and the differential XDP-vs-slow-path
# comparison (root). `make test` runs the first four for FUZZ_SHORT each
# (new inputs on top of the seed corpora, which plain `go test` already
# runs); `make fuzz` runs all five for FUZZTIME each. FUZZ_SHORT is a count
# of executions, not a duration: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with "context deadline exceeded" on a loaded machine
# (golang/go#75804), and a count also gives every CI run the same work
# (100,000 executions: 2-8 s per target on a 2-vCPU VM).
FUZZ_SHORT ?= 100000x
FUZZTIME   ?= 10m

fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_SHORT) ./userspace/sipmsg/
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZ_SHORT) ./userspace/sipproxy/
	$(GO) test -run '^$$' -fuzz '^FuzzStateful$$' -fuzztime $(FUZZ_SHORT) ./userspace/sipproxy/
	$(GO) test -run '^$$' -fuzz '^FuzzHandleResponse$$' -fuzztime $(FUZZ_SHORT) ./userspace/probe/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./userspace/sipmsg/
	$(GO) test -run '^$$' -fuzz '^FuzzProcess$$' -fuzztime $(FUZZTIME) ./userspace/sipproxy/
	$(GO) test -run '^$$' -fuzz '^FuzzStateful$$' -fuzztime $(FUZZTIME) ./userspace/sipproxy/
	$(GO) test -run '^$$' -fuzz '^FuzzHandleResponse$$' -fuzztime $(FUZZTIME) ./userspace/probe/
	$(GO) test -run '^$$' -fuzz '^FuzzDifferential$$' -fuzztime $(FUZZTIME) ./tests/

clean:
	rm -rf $(BIN)
