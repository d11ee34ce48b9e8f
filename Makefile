# SPDX-License-Identifier: MIT
# The two commands people use: `make run` and `make test`. Both install what
# is missing on a fresh Debian 12 machine, configure, build, and go.

BUILD    ?= build
ASAN     ?= build-asan
TSAN     ?= build-tsan
FUZZ     ?= build-fuzz
FUZZ_SECONDS ?= 30
MESON    ?= meson

.PHONY: all deps build run test test-asan test-tsan fuzz bench clean up down format format-check lint deb pin-base install uninstall

all: build

deps:
	@tools/install-deps

$(BUILD)/build.ninja: | deps
	$(MESON) setup $(BUILD)

build: deps $(BUILD)/build.ninja
	$(MESON) compile -C $(BUILD)

# A development instance: no root needed, DNS on 127.0.0.1:$(DNS_PORT) (UDP
# and TCP), the dashboard on 127.0.0.1:$(HTTP_PORT), records from ./hosts,
# state under the build folder, D-Bus on the session bus (joyridectl --user),
# nothing beyond loopback. `make run DNS_PORT=5354 HTTP_PORT=5001` moves it.
DNS_PORT  ?= 5353
HTTP_PORT ?= 5000
run: build
	@DNS_PORT=$(DNS_PORT) HTTP_PORT=$(HTTP_PORT) tools/run-dev $(BUILD)

# The whole suite; ends with one line "N passed, M failed".
test: build
	@tools/run-tests $(BUILD)

test-asan: deps
	@[ -f $(ASAN)/build.ninja ] || $(MESON) setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false
	$(MESON) compile -C $(ASAN)
	@# The packaged-system test installs the build into a container without
	@# the sanitizer runtime, the image test builds from source on its own,
	@# and the browser adds nothing under ASan.
	@tools/run-tests $(ASAN) --no-suite system --no-suite container --no-suite browser

# ThreadSanitizer over the unit tests (the store read by threads while
# written) and the DNS integration tests (the daemon's answering threads).
# A report stops the program (halt_on_error), so the test fails. The SWIM
# simulation runs in one thread and takes ten minutes under TSan: left out.
# tools/tsan.supp is for reports inside GLib only, each with its reason
# (none so far). die_after_fork=0: test-hosts-dir forks a child that drops
# to nobody and runs a fresh hosts source of its own (a file that becomes
# unreadable keeps its records); the child's threads never meet the parent's,
# but TSan refuses threads after a fork of a threaded process by default.
# G_SLICE=always-malloc: GLib 2.74's slice allocator hands a block freed on
# one thread to another without malloc, which TSan cannot see (a GPtrArray
# freed on liburcu's thread came back as a render worker's GString).
test-tsan: deps
	@[ -f $(TSAN)/build.ninja ] || $(MESON) setup $(TSAN) -Db_sanitize=thread -Db_lundef=false
	$(MESON) compile -C $(TSAN)
	@G_SLICE=always-malloc TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0 suppressions=$(CURDIR)/tools/tsan.supp" \
		tools/run-tests $(TSAN) --suite unit --suite dns --no-suite simulation

fuzz: deps
	@[ -f $(FUZZ)/build.ninja ] || CC=clang $(MESON) setup $(FUZZ) -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
	$(MESON) compile -C $(FUZZ)
	@tools/run-fuzz $(FUZZ) $(FUZZ_SECONDS)

bench: build
	bench/dns-bench.sh $(BUILD)

# Formats every C file, header and shell script in place (.clang-format,
# shfmt); `make format-check` only reports what would change.
format: deps
	@tools/format

format-check: deps
	@tools/format-check

# clang-tidy (.clang-tidy), scan-build and shellcheck (.shellcheckrc); fails
# on any finding. The analyzer's build goes to $(BUILD)-scan.
lint: build
	@tools/lint $(BUILD)

# meson install (PREFIX: configure $(BUILD) for that prefix first; DESTDIR:
# stage there), then, to the live system as root, what a package's scripts
# do: user, folders, catalog, D-Bus policy, systemd reload. `make uninstall`
# undoes it (the user, state and settings stay, as with apt remove).
PREFIX  ?=
DESTDIR ?=
install: build
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" tools/install-system install $(BUILD)

uninstall:
	@DESTDIR="$(DESTDIR)" tools/install-system uninstall $(BUILD)

# The Debian package (debian/), built in a clean copy of the tree with
# dpkg-buildpackage and checked with lintian; the .deb lands in $(DEB_OUT).
DEB_OUT ?= $(BUILD)/deb
deb: deps
	@tools/make-deb $(DEB_OUT)

# joyrided in a container with Docker Compose (docker-compose.yml): the v2
# plugin when it is there, else v1. DOCKER_GID gives the container's user the
# group of the Docker socket, read from the socket itself (see README.md, "In
# a container"). The image is labelled with the version of meson.build, the
# git commit and the build time.
DOCKER_SOCK ?= /var/run/docker.sock
DOCKER_GID  ?= $(shell stat -c %g $(DOCKER_SOCK) 2>/dev/null)
IMAGE_LABELS = JOYRIDE_VERSION=$(shell sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" meson.build | head -n1) \
	JOYRIDE_REVISION=$(shell git rev-parse HEAD 2>/dev/null) \
	JOYRIDE_CREATED=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
COMPOSE     ?= $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
		elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)

up:
	@[ -n "$(COMPOSE)" ] || { echo "make up: Docker Compose is missing (apt-get install docker-compose)" >&2; exit 1; }
	@[ -n "$(DOCKER_GID)" ] || { echo "make up: no Docker socket at $(DOCKER_SOCK) (set DOCKER_SOCK)" >&2; exit 1; }
	@[ -S "$(DOCKER_SOCK)" ] || { echo "make up: $(DOCKER_SOCK) is not a socket (set DOCKER_SOCK)" >&2; exit 1; }
	@echo "make up: the container gets group $(DOCKER_GID), the group of $(DOCKER_SOCK)"
	DOCKER_GID=$(DOCKER_GID) DOCKER_SOCK=$(DOCKER_SOCK) $(IMAGE_LABELS) $(COMPOSE) up -d --build

down:
	@[ -n "$(COMPOSE)" ] || { echo "make down: Docker Compose is missing (apt-get install docker-compose)" >&2; exit 1; }
	DOCKER_GID=$(or $(DOCKER_GID),0) DOCKER_SOCK=$(DOCKER_SOCK) $(COMPOSE) down

# Pins the base image of Dockerfile and docker-compose.yml to the digest
# that debian:bookworm-slim has now (needs a registry).
pin-base:
	@tools/pin-base-image

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN) $(FUZZ) $(BUILD)-scan $(BUILD)-lint-fuzz
