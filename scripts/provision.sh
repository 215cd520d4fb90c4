#!/usr/bin/env bash
# provision.sh — installs everything the test suite needs on a fresh Debian 12 (bookworm) machine.
#
# Idempotent: every step checks before it acts, so re-running it is cheap. It installs:
#   - PostgreSQL 15 and Redis 7 from Debian's own suite;
#   - Valkey 8 from bookworm-backports (the suite is added to the existing Debian source file; if the
#     package cannot be had, the step warns and the Valkey suites report the missing server);
#   - MinIO, built by `go install` of a pinned module version into $LIFEBOAT_TOOLS_DIR/bin;
#   - the npm dependencies (npm ci);
#   - lifeboat's native BLAKE3 addon, built from source by cargo (scripts/build-native.sh; crates.io only).
# Neo4j and OpenSearch (Maven Central jars) get their own install_* function here in a later issue.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${LIFEBOAT_TOOLS_DIR:-$HOME/.cache/lifeboat-tools}"
# MinIO publishes RELEASE.* tags, which are not semantic versions; the module proxy serves the pinned
# commit as this pseudo-version (minio master of 2026-02-12).
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
DEBIAN_SOURCES="/etc/apt/sources.list.d/debian.sources"

log() { printf '[provision] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_update_once
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# Adds bookworm-backports to the Suites line of the stanza that already lists bookworm-updates, so the
# mirror stays whatever the machine is configured with (no host name is written by this project).
enable_backports() {
  if [ -f "$DEBIAN_SOURCES" ]; then
    if ! grep -Eq '^Suites:.*bookworm-backports' "$DEBIAN_SOURCES"; then
      log "adding bookworm-backports to $DEBIAN_SOURCES"
      as_root sed -i -E '/^Suites:.*bookworm-updates/ s/$/ bookworm-backports/' "$DEBIAN_SOURCES"
      APT_UPDATED=0
    fi
  elif [ -f /etc/apt/sources.list ] && ! grep -q 'bookworm-backports' /etc/apt/sources.list; then
    local line
    line=$(grep -E '^deb .* bookworm main' /etc/apt/sources.list | head -n1 || true)
    if [ -n "$line" ]; then
      log "adding bookworm-backports to /etc/apt/sources.list"
      echo "${line/ bookworm / bookworm-backports }" | as_root tee -a /etc/apt/sources.list >/dev/null
      APT_UPDATED=0
    fi
  fi
}

install_postgres() {
  apt_install postgresql-15 postgresql-client-15
}

# pgvector for PostgreSQL 15, built from Debian's source package (see install-pgvector.sh for why).
# shellcheck source=scripts/install-pgvector.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-pgvector.sh"

install_redis() {
  apt_install redis-server redis-tools
}

install_valkey() {
  if command -v valkey-server >/dev/null 2>&1; then return 0; fi
  enable_backports
  apt_update_once
  log "apt-get install -t bookworm-backports valkey-server"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -t bookworm-backports valkey-server valkey-tools; then
    log "WARNING: valkey-server could not be installed from bookworm-backports; Valkey suites will report it"
  fi
}

install_minio() {
  local bin="$TOOLS_DIR/bin/minio" stamp="$TOOLS_DIR/bin/minio.version"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$MINIO_VERSION" ]; then return 0; fi
  command -v go >/dev/null 2>&1 || { log "go is required to build MinIO"; exit 1; }
  log "go install $MINIO_MODULE@$MINIO_VERSION (takes a few minutes the first time)"
  mkdir -p "$TOOLS_DIR/bin"
  GOBIN="$TOOLS_DIR/bin" GOFLAGS=-mod=mod go install "$MINIO_MODULE@$MINIO_VERSION"
  echo "$MINIO_VERSION" > "$stamp"
}

# restic, for bench/repository.sh only (benchmarks are not part of CI, so main does not call this).
# Pinned to the newest v0.x release the Go module proxy serves (v0.19.1, tagged 2026-07-05). Not a
# plain `go install module@version`: that checks the module for a deprecation notice by reading its
# version list, which the proxy reachable here refuses (403), so the command is built from a throwaway
# module that requires only restic (same dependency versions as `go install` would pick).
install_restic() {
  local version="v0.19.1"
  local bin="$TOOLS_DIR/bin/restic" stamp="$TOOLS_DIR/bin/restic.version" work
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then return 0; fi
  command -v go >/dev/null 2>&1 || { log "go is required to build restic"; exit 1; }
  log "building github.com/restic/restic/cmd/restic@$version (takes a minute or two the first time)"
  mkdir -p "$TOOLS_DIR/bin"
  work=$(mktemp -d)
  printf 'module lifeboat.local/restic-build\n\ngo 1.24\n\nrequire github.com/restic/restic %s\n' \
    "$version" > "$work/go.mod"
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -o "$bin" github.com/restic/restic/cmd/restic)
  rm -rf "$work"
  echo "$version" > "$stamp"
}

install_node_modules() {
  cd "$ROOT"
  local stamp="node_modules/.lifeboat-lock-hash" hash
  hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then return 0; fi
  log "npm ci"
  # zstd-napi builds libzstd from the sources it ships: never try to download a prebuilt binary.
  npm_config_build_from_source=true npm ci --no-audit --no-fund
  echo "$hash" > "$stamp"
}

install_native() {
  log "native addon (cargo build, native/blake3)"
  "$ROOT/scripts/build-native.sh"
}

main() {
  install_postgres
  install_pgvector
  install_redis
  install_valkey
  install_minio
  install_node_modules
  install_native
  log "done (tools in $TOOLS_DIR/bin)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
