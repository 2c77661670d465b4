# Tandem: the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=mod

BIN := bin
RUN_DIR := .cache/run
REDIS_PORT ?= 6379
TANDEM_ADDR ?= 127.0.0.1:8080

.PHONY: run test vet unit e2e build bench fuzz clean deps chaos loadtest bench-smoke

## build: compile the binaries into bin/
build:
	$(GO) build -o $(BIN)/tandem ./cmd/tandem
	$(GO) build -o $(BIN)/tandem-mockagent ./cmd/tandem-mockagent

## deps: install what the tests and `make run` need: redis-server (apt) and
## the pinned Sandbox Agent binary (npm)
deps:
	@scripts/ensure-redis.sh >/dev/null
	@scripts/install-sandbox-agent.sh >/dev/null

## run: a local redis-server, one Tandem node and, as its child, the Sandbox
## Agent server with our scripted agent (Ctrl-C stops everything)
run: deps build
	@scripts/run.sh

## browser-deps: what the web client's browser tests need: Debian's
## Chromium (apt) and internal/e2e/browser's npm packages (npm ci)
browser-deps:
	@scripts/ensure-browser.sh
.PHONY: browser-deps

## lb-deps: what the end-to-end EventSource test through nginx needs
## (internal/e2e/eventsource_test.go): Debian's nginx (apt) and internal/chaos/node's npm
## packages (npm ci)
lb-deps:
	@scripts/ensure-nginx.sh >/dev/null
	@scripts/ensure-node-client.sh
.PHONY: lb-deps

## vendor-web: vendor the web client's marked and DOMPurify again (npm pack,
## the versions pinned in scripts/vendor-web.sh) into web/static/vendor/
vendor-web:
	@scripts/vendor-web.sh
.PHONY: vendor-web

## js-deps: the JavaScript client's dev packages (npm ci in clients/js:
## eventsource and typescript), for clients/js/js_test.go
js-deps:
	@scripts/ensure-js-client.sh
.PHONY: js-deps

## promtool-deps: promtool (Debian's prometheus package, apt), for
## deploy/deploy_test.go's `promtool check rules` and `promtool test rules`
promtool-deps:
	@scripts/ensure-promtool.sh >/dev/null
.PHONY: promtool-deps

## test: vet, then every test with the race detector against real peers
## (the browser tests too: internal/e2e/browser_test.go drives headless Chromium;
## internal/e2e/eventsource_test.go runs nginx and Node.js EventSources;
## clients/js/js_test.go runs the JavaScript client's tests against real nodes;
## deploy/deploy_test.go runs promtool on the alert rules)
test: deps browser-deps lb-deps js-deps promtool-deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

## fuzz: run every fuzz target for FUZZTIME each (default 10s)
FUZZTIME ?= 10s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

## bench: the append script next to redis-benchmark XADD, and the SSE encoder
bench: deps
	scripts/bench-eventlog.sh

## loadtest: tandem-bench's scenarios at full size (BENCHMARKS.md); results
## in .cache/bench/results.json. LOADTEST=fanout|append|replay|prompt|all
LOADTEST ?= all
loadtest: deps build
	$(GO) build -o $(BIN)/tandem-bench ./cmd/tandem-bench
	@mkdir -p .cache/bench
	TANDEM_SANDBOX_AGENT_BIN=$$(scripts/install-sandbox-agent.sh) $(BIN)/tandem-bench -json .cache/bench/results.json $(LOADTEST)

## bench-smoke: every tandem-bench scenario at tiny sizes, so that the tool
## keeps working (it asserts nothing about speed)
bench-smoke: deps build
	$(GO) build -o $(BIN)/tandem-bench ./cmd/tandem-bench
	TANDEM_SANDBOX_AGENT_BIN=$$(scripts/install-sandbox-agent.sh) $(BIN)/tandem-bench \
	  -conns 100 -workspaces 5 -rate 50 -duration 3s -warmup 1s \
	  -hot-events 2000 -sessions 5 -events-per-session 200 \
	  -replay-events 500 -replay-runs 2 -prompts 3 -timeout 5m all

## chaos: the fault campaign (scripts/chaos.sh): three nodes behind nginx,
## randomized faults, an independent history checker. CHAOS_DURATION
## (default 3m), CHAOS_SEED (replay), CHAOS_LONG=1 (at least 300 faults)
chaos:
	@CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) CHAOS_LONG=$(CHAOS_LONG) scripts/chaos.sh

clean:
	rm -rf $(BIN) .cache/run
