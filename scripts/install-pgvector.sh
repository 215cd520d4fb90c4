#!/usr/bin/env bash
# install-pgvector.sh — builds the pgvector extension for PostgreSQL 15 from Debian's own source package.
#
# Source it from provision.sh and call install_pgvector, or run it directly. Idempotent: returns at once
# when vector.control is already installed.
#
# Why from source, and why from trixie: neither bookworm nor bookworm-backports has pgvector at all (no
# source package, no postgresql-15-pgvector binary). The oldest Debian suite with it is trixie (source
# package pgvector, whose only binary is postgresql-17-pgvector). So the trixie *source* package is
# fetched with a private, throwaway apt configuration that holds one `Types: deb-src` stanza for trixie:
# the machine's own apt sources are not changed, and no binary package can ever come from trixie. Its
# URI and keyring are copied from the machine's bookworm stanza, so no host name is written here, and
# apt checks the signed trixie index and the source files' hashes as usual. The build is a plain PGXS
# build against postgresql-server-dev-15 (Debian's patch "no-native" already drops -march=native).
# The files `make install` puts under /usr/lib/postgresql/15 and /usr/share/postgresql/15 belong to no
# Debian package.
set -euo pipefail

PGVECTOR_PG_MAJOR="${PGVECTOR_PG_MAJOR:-15}"
PGVECTOR_SOURCE_SUITE="${PGVECTOR_SOURCE_SUITE:-trixie}"
# Empty: the newest version the suite has (0.8.0-1 in trixie when this was written).
PGVECTOR_DEB_VERSION="${PGVECTOR_DEB_VERSION:-}"

# The apt helpers (log, as_root, apt_update_once, apt_install) are provision.sh's: already defined when
# provision.sh sources this file; standalone, source provision.sh for them (it runs nothing when sourced).
if ! declare -F apt_install >/dev/null; then
  # shellcheck source=scripts/provision.sh
  source "$(dirname "${BASH_SOURCE[0]}")/provision.sh"
fi

# Prints "URI KEYRING" of the machine's Debian (bookworm) archive, from the deb822 file or, failing
# that, from a one-line sources.list.
_pgvector_debian_archive() {
  local deb822=/etc/apt/sources.list.d/debian.sources line
  if [ -f "$deb822" ]; then
    line=$(awk -v RS= '/(^|\n)Suites:[^\n]*[[:space:]]bookworm([[:space:]]|\n|$)/ {
        uri = ""; key = ""
        n = split($0, l, "\n")
        for (i = 1; i <= n; i++) {
          if (l[i] ~ /^URIs:/) { split(l[i], f, /[[:space:]]+/); uri = f[2] }
          if (l[i] ~ /^Signed-By:/) { split(l[i], f, /[[:space:]]+/); key = f[2] }
        }
        if (uri != "") { print uri, key; exit }
      }' "$deb822")
  fi
  if [ -z "${line:-}" ] && [ -f /etc/apt/sources.list ]; then
    line=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
  fi
  [ -n "${line:-}" ] || return 1
  local uri keyring
  read -r uri keyring <<<"$line"
  printf '%s %s\n' "$uri" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}"
}

install_pgvector() {
  local pg_config="/usr/lib/postgresql/$PGVECTOR_PG_MAJOR/bin/pg_config"
  local control="/usr/share/postgresql/$PGVECTOR_PG_MAJOR/extension/vector.control"
  if [ -f "$control" ]; then return 0; fi

  # Headers at the installed server's own version when the mirror still has it, so installing them
  # does not also upgrade (and restart) the server; otherwise whatever apt picks.
  local server_version dev="postgresql-server-dev-$PGVECTOR_PG_MAJOR"
  server_version=$(dpkg-query -W -f='${Version}' "postgresql-$PGVECTOR_PG_MAJOR" 2>/dev/null || true)
  if ! dpkg-query -W -f='${Status}' "$dev" 2>/dev/null | grep -q 'install ok installed'; then
    apt_update_once
    if [ -n "$server_version" ] && apt-cache show "$dev=$server_version" >/dev/null 2>&1; then
      dev="$dev=$server_version"
    fi
  fi
  apt_install "$dev" build-essential dpkg-dev

  local archive uri keyring
  archive=$(_pgvector_debian_archive) || { log "no bookworm apt source found to copy"; return 1; }
  read -r uri keyring <<<"$archive"

  # The build runs in a subshell so that its temporary directory is removed however it ends.
  (
    set -euo pipefail
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
      "$uri" "$PGVECTOR_SOURCE_SUITE" "$keyring" > "$work/apt/sources.list.d/pgvector-src.sources"
    apt_opts=(
      -o Dir::Etc::SourceList=/dev/null
      -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
      -o "Dir::State::Lists=$work/apt/lists"
      -o "Dir::Cache=$work/apt/cache"
      -o APT::Sandbox::User=root
    )
    log "fetching the pgvector source package index of $PGVECTOR_SOURCE_SUITE (deb-src only)"
    apt-get "${apt_opts[@]}" update -qq
    cd "$work"
    log "apt-get source pgvector${PGVECTOR_DEB_VERSION:+=$PGVECTOR_DEB_VERSION} (from $PGVECTOR_SOURCE_SUITE)"
    apt-get "${apt_opts[@]}" source -qq --download-only "pgvector${PGVECTOR_DEB_VERSION:+=$PGVECTOR_DEB_VERSION}"
    dsc=$(ls pgvector_*.dsc)
    # apt already checked these files against the signed index; the .dsc's own signature would need
    # debian-keyring, so dpkg-source is told not to check it again.
    dpkg-source --no-check -x "$dsc" src >/dev/null
    log "building ${dsc%.dsc} for PostgreSQL $PGVECTOR_PG_MAJOR"
    make -s -C src USE_PGXS=1 PG_CONFIG="$pg_config" OPTFLAGS= -j"$(nproc)" >/dev/null
    as_root make -s -C src USE_PGXS=1 PG_CONFIG="$pg_config" OPTFLAGS= install >/dev/null
  )
  [ -f "$control" ] || { log "pgvector build finished but $control is missing"; return 1; }
  log "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$control") installed"
}

# Run only when executed (not when sourced, also not through provision.sh sourcing it back).
if [[ "${BASH_SOURCE[0]}" == "$0" && ${#BASH_SOURCE[@]} -eq 1 ]]; then install_pgvector "$@"; fi
