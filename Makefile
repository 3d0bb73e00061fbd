# Cloister. `make run` starts everything in one process; `make test` runs
# every module's tests against an embedded NATS and the Redis at $REDIS_URL.

GO        ?= go
PKGS      := $(shell $(GO) list -m -f '{{.Path}}/...')
FUZZTIME  ?= 60s
BENCHTIME ?= 2s
DATA_DIR  ?=
RUN_FLAGS ?=

.PHONY: run demo test bench fuzz lint proto build tidy

## run: cloister server -dev (embedded NATS JetStream, in-process cache) on 127.0.0.1:8080
## and the sample image in its built-in registry at 127.0.0.1:5000
run:
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/cloister-launcher ./cmd/cloister-launcher
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/hello-https ./samples/hello-https
	$(GO) run ./cmd/cloister server -dev --launcher .bin/cloister-launcher --sample .bin/hello-https $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(RUN_FLAGS)

## demo: the user's journey narrated step by step in a terminal, in under a minute, nothing mocked
## (server, CLI, node agent in simulation mode, the converted image's launcher); again: .bin/cloister-demo --keep
demo:
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/cloister ./cmd/cloister
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/cloister-node-agent ./cmd/cloister-node-agent
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/cloister-launcher ./cmd/cloister-launcher
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/hello-https ./samples/hello-https
	CGO_ENABLED=0 $(GO) build -trimpath -o .bin/cloister-demo ./cmd/cloister-demo
	.bin/cloister-demo --bin .bin

## test: every module's tests, with the race detector; tests' artifacts (the console's
## screenshots, the chaos tests' reports) go to .artifacts/, and the chaos reports are printed
## at the end
test:
	rm -rf .artifacts && mkdir -p .artifacts
	@status=0; $(GO) test -race -count=1 -artifacts -outputdir $(CURDIR)/.artifacts $(PKGS) || status=$$?; \
	for f in $$(find .artifacts -name chaos.txt | sort); do echo "== chaos report ($$f)"; cat "$$f"; done; \
	exit $$status

## bench: benchmarks, each printed beside its floor measured in the same run; x-floor is the
## fraction of the floor's speed (1.0 = at the floor, 0.5 = twice as slow). One package at
## a time (-p 1): two packages' benchmarks at once would take each other's cores.
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	GO="$(GO)" FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh $(PKGS)

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

## lint: gofmt, go vet and staticcheck (CI runs it)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

## proto: regenerate libs/gen from proto/: the messages (protoc-gen-go) and each service's
## NATS surface (protoc-gen-natsrpc: method table, server interface, client); needs protoc
## (apt-get install protobuf-compiler)
proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	cd libs && $(GO) build -o ../.bin/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	cd libs && $(GO) build -o ../.bin/protoc-gen-natsrpc ./internal/protoc-gen-natsrpc
	rm -rf libs/gen/cloister
	protoc --plugin=protoc-gen-go=.bin/protoc-gen-go --plugin=protoc-gen-natsrpc=.bin/protoc-gen-natsrpc -I proto \
		--go_out=libs/gen --go_opt=module=github.com/cloister-cc/cloister/libs/gen \
		--natsrpc_out=libs/gen --natsrpc_opt=module=github.com/cloister-cc/cloister/libs/gen \
		$$(find proto -name '*.proto' | sort)

## build: the cloister, cloister-launcher, cloister-node-agent and hello-https (sample) binaries in ./bin (static)
build:
	CGO_ENABLED=0 $(GO) build -o bin/cloister ./cmd/cloister
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/cloister-launcher ./cmd/cloister-launcher
	CGO_ENABLED=0 $(GO) build -o bin/cloister-node-agent ./cmd/cloister-node-agent
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/hello-https ./samples/hello-https

## tidy: go mod tidy in every module
tidy:
	for d in $$($(GO) list -m -f '{{.Dir}}'); do (cd $$d && GOWORK=off $(GO) mod tidy) || exit 1; done
