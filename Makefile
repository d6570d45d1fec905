# The public sample data set lives beside the repository in ../shared/data;
# the tests find it through CRMPULSE_SAMPLE_DATA.
SAMPLE_DATA := $(abspath ../shared/data)
export CRMPULSE_SAMPLE_DATA ?= $(if $(wildcard $(SAMPLE_DATA)/crm-sales-opportunities),$(SAMPLE_DATA),)

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GOTESTFLAGS ?=
# A count of inputs, not a duration: with a duration, Go 1.26's fuzzing
# coordinator may fail a target with "context deadline exceeded" as the
# time runs out (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 200000x

.PHONY: build demo test fuzz vet screenshots js-vendor bench

build:
	go build -ldflags "$(LDFLAGS)" -o bin/crmpulse ./cmd/crmpulse

# The README's first command.
demo: build
	./bin/crmpulse serve --demo

# The README's second command: every test, with the race detector, and a
# short run of every fuzz target.
test: vet
	go test -race -count=1 $(GOTESTFLAGS) ./...
	$(MAKE) fuzz FUZZTIME=60000x

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Runs each fuzz target for FUZZTIME.
fuzz:
	@for pkg in $$(go list ./...); do \
	  for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target"; \
	    go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Retakes the README's screenshots in headless Chromium.
screenshots:
	CRMPULSE_SCREENSHOTS=1 go test -count=1 -run 'TestPage' ./e2e/

# Refreshes the vendored chart library from the npm registry.
js-vendor:
	cd $$(mktemp -d) && npm pack chart.js@4 && tar xzf chart.js-*.tgz && \
	  cp package/dist/chart.umd.min.js $(CURDIR)/web/static/vendor/ && \
	  cp package/LICENSE.md $(CURDIR)/web/static/vendor/chart.js-LICENSE.md

# Drives the dashboard and the wall display in headless Chromium.
.PHONY: browser-test
browser-test:
	go test -race -count=1 -run 'TestPage|TestDashboard|TestWall|TestDisplay' ./e2e/

# Retakes both README screenshots: the dashboard and the wall display.
.PHONY: screenshots-all
screenshots-all:
	CRMPULSE_SCREENSHOTS=1 go test -count=1 -run 'TestPage|TestWall' ./e2e/

# Measures the real binary on loopback beside PostgreSQL and the bare parts,
# and prints one table (docs/benchmarks.md). BENCH_SHORT=1 for a run of a
# few minutes; every size is a BENCH_* variable (bench/config.go).
bench:
	go run ./bench/cmd/crmpulse-bench
	go run ./bench/cluster $(if $(BENCH_SHORT),-events 50000 -restore 200000,)

# Benchmarks of the state: Apply, and Report over 1,000 people with
# CRMPULSE_BENCH_EVENTS events (default 1,000,000); see
# docs/state-performance.md.
.PHONY: bench-state
bench-state:
	go test -run '^$$' -bench 'Apply|Report' -benchtime 200x -timeout 90m ./aggregate/
