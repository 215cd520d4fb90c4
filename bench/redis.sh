#!/usr/bin/env bash
# bench/redis.sh — lifeboat's redis engine against `redis-cli --rdb`, on the same server in the same run.
#
#   bench/redis.sh                            # ~1 GiB dataset in Redis 7
#   BENCH_REDIS_MIB=256 BENCH_REDIS_SERVER=valkey bench/redis.sh
#
# A script, not a test: it asserts nothing about speed. It starts ONE throwaway server (127.0.0.1, a
# free port, no persistence of its own, repl-diskless-sync-delay 0 so that neither tool waits the
# default 5 s for other replicas), fills it with BENCH_REDIS_MIB MiB of protocol (bench/redis-fill.ts:
# strings with and without TTLs, hashes, lists, sets, sorted sets, streams) through `redis-cli --pipe`,
# then, BENCH_REDIS_RUNS times, alternating:
#   - `redis-cli --rdb FILE`: the replication handshake, the RDB written to a local file (redis-cli
#     fsyncs it), as an operator would take one by hand;
#   - `lifeboat backup --source cache` into a fresh local repository (init untimed): the same handshake,
#     the RDB parsed as it streams (stats, CRC-64 check), chunked, compressed (zstd 1: an RDB's
#     strings are LZF-compressed already), encrypted (AES-256-GCM) and written to the repository;
# and reports the medians: wall time, CPU (user+sys), peak RSS, and bytes stored. Then, once each:
# lifeboat's second backup into the last repository (unchanged data: deduplication), and a restore
# online (RESTORE into an empty second server) and offline (RDB into a data directory, server started,
# loaded), for the record.
#
# Environment: BENCH_REDIS_MIB (default 1024), BENCH_REDIS_SERVER redis|valkey (default redis),
# BENCH_REDIS_RUNS (default 3), BENCH_DIR (default /tmp/lifeboat-bench-redis, emptied),
# BENCH_LIFEBOAT_REF (build lifeboat from this commit instead of the work tree's src/).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIB="${BENCH_REDIS_MIB:-1024}"
FLAVOUR="${BENCH_REDIS_SERVER:-redis}"
RUNS="${BENCH_REDIS_RUNS:-3}"
SCRATCH="${BENCH_DIR:-/tmp/lifeboat-bench-redis}"
LIFEBOAT_REF="${BENCH_LIFEBOAT_REF:-}"
PASSWORD="lifeboat-bench-password"
BUILD="$SCRATCH/build"
NODE="$(command -v node)"
COMMAND_LINE="$(for name in BENCH_REDIS_MIB BENCH_REDIS_SERVER BENCH_REDIS_RUNS BENCH_DIR BENCH_LIFEBOAT_REF; do
  if [ -n "${!name:-}" ]; then printf '%s=%q ' "$name" "${!name}"; fi
done)bench/redis.sh"

log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

case "$FLAVOUR" in redis | valkey) ;; *) log "BENCH_REDIS_SERVER must be redis or valkey"; exit 2 ;; esac
case "$SCRATCH" in /tmp/* | /var/tmp/*) ;; *) log "BENCH_DIR must be under /tmp or /var/tmp (it is emptied)"; exit 2 ;; esac
SERVER="/usr/bin/$FLAVOUR-server"
CLI="/usr/bin/$FLAVOUR-cli"
[ -x "$SERVER" ] && [ -x "$CLI" ] || { log "no $SERVER or $CLI: run scripts/provision.sh"; exit 2; }
/usr/bin/time -f '%e' true 2>/dev/null || { log "GNU time is needed (apt-get install time)"; exit 2; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$SCRATCH"/data-* "$SCRATCH"/repo-* "$SCRATCH"/*.rdb "$SCRATCH"/fill.resp
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/logs" "$BUILD/bin" "$BUILD/bench"
build_lifeboat "$ROOT" "$BUILD" "$LIFEBOAT_REF"
cp "$ROOT/bench/redis-fill.ts" "$BUILD/bench/"
(cd "$BUILD" && node node_modules/typescript/bin/tsc --target es2022 --module nodenext --moduleResolution nodenext \
  --types node --strict --skipLibCheck --outDir bench bench/redis-fill.ts)
LIFEBOAT=("$NODE" "$BUILD/bin/lifeboat.js")
# The repository opens with a generated key (no scrypt), as on a host that backs up on a schedule;
# builds before `key generate` use a password.
REPO_KEY=$(repository_key bench-password)
log "built lifeboat ($LIFEBOAT_SOURCE)"

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'; }
start_server() { # start_server NAME PORT: a server with its own data dir, in the background
  mkdir -p "$SCRATCH/data-$1"
  "$SERVER" --port "$2" --bind 127.0.0.1 --dir "$SCRATCH/data-$1" --save '' --appendonly no --requirepass "$PASSWORD" \
    --repl-diskless-sync-delay 0 --daemonize no --logfile "$SCRATCH/logs/$1.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do "$CLI" -p "$2" -a "$PASSWORD" --no-auth-warning ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "server $1 did not start"; exit 1
}
PORT=$(free_port)
start_server source "$PORT"
log "filling $FLAVOUR with ~$MIB MiB of protocol"
node "$BUILD/bench/redis-fill.js" "$MIB" > "$SCRATCH/fill.resp"
"$CLI" -p "$PORT" -a "$PASSWORD" --no-auth-warning --pipe < "$SCRATCH/fill.resp" > "$SCRATCH/logs/fill.log"
rm -f "$SCRATCH/fill.resp"
USED=$("$CLI" -p "$PORT" -a "$PASSWORD" --no-auth-warning info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r')
KEYS=$("$CLI" -p "$PORT" -a "$PASSWORD" --no-auth-warning dbsize)
VERSION=$("$SERVER" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
log "$KEYS keys, used_memory $USED bytes"

config() { # config REPO_DIR: a lifeboat config with one redis source and an empty target
  cat > "$1.yaml" <<YAML
repository: { url: $1, password: $REPO_KEY }
sources:
  cache: { engine: redis, url: "redis://127.0.0.1:$PORT", password: "$PASSWORD" }
drills:
  targets:
    cache: { url: "redis://127.0.0.1:${TARGET_PORT:-1}", password: "$PASSWORD" }
YAML
}
timed() { # timed NAME CMD...: appends "NAME wall rss_kib user sys" to results
  local tfile="$SCRATCH/logs/time-$1"
  /usr/bin/time -f '%e %M %U %S' -o "$tfile" "${@:2}" > "$SCRATCH/logs/$1.out" 2> "$SCRATCH/logs/$1.err" || { log "$1 failed: $(tail -3 "$SCRATCH/logs/$1.err")"; exit 1; }
  echo "${1%%-*} $(tail -1 "$tfile")" >> "$SCRATCH/results"
}
: > "$SCRATCH/results"
RDB_SIZE=0
for run in $(seq 1 "$RUNS"); do
  sync
  rm -f "$SCRATCH/cli.rdb"
  timed "rediscli-$run" "$CLI" -p "$PORT" -a "$PASSWORD" --no-auth-warning --rdb "$SCRATCH/cli.rdb"
  RDB_SIZE=$(stat -c %s "$SCRATCH/cli.rdb")
  # Each tool's output goes as soon as it is measured (as lifeboat's repository below), so that the
  # other tool's writes reuse memory just freed. On a VM with free page reporting (virtio-balloon), a
  # page left free for a few seconds goes back to the host, and the first write to it costs a host
  # fault: left in place, cli.rdb made lifeboat's packs land in such pages, and lifeboat's kernel time
  # tripled (perf: copy_folio_from_iter_atomic 11.5% of its samples, against 0.6% otherwise).
  rm -f "$SCRATCH/cli.rdb"
  rm -rf "$SCRATCH/repo-$run"
  config "$SCRATCH/repo-$run"
  LIFEBOAT_CONFIG="$SCRATCH/repo-$run.yaml" "${LIFEBOAT[@]}" init > /dev/null
  sync
  timed "lifeboat-$run" env LIFEBOAT_CONFIG="$SCRATCH/repo-$run.yaml" "${LIFEBOAT[@]}" backup --source cache --json
  STORED=$(du -sb "$SCRATCH/repo-$run" | cut -f1)
  [ "$run" = "$RUNS" ] || rm -rf "$SCRATCH/repo-$run"
done
LAST="$SCRATCH/repo-$RUNS"
timed "second-1" env LIFEBOAT_CONFIG="$LAST.yaml" "${LIFEBOAT[@]}" backup --source cache --json
STORED2=$(du -sb "$LAST" | cut -f1)
TARGET_PORT=$(free_port)
start_server target "$TARGET_PORT"
config "$LAST"
timed "restoreonline-1" env LIFEBOAT_CONFIG="$LAST.yaml" "${LIFEBOAT[@]}" restore latest --source cache --target cache --yes --json
RESTORED_KEYS=$("$CLI" -p "$TARGET_PORT" -a "$PASSWORD" --no-auth-warning dbsize)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
stat_of() { grep "^$1 " "$SCRATCH/results" | awk -v f="$2" '{ print $f }' | median; }
cpu_of() { grep "^$1 " "$SCRATCH/results" | awk '{ print $4 + $5 }' | median; }
CLI_WALL=$(stat_of rediscli 2); LB_WALL=$(stat_of lifeboat 2)
REPORT="$SCRATCH/report.md"
{
  echo "# lifeboat redis engine vs redis-cli --rdb — $(date -u +%Y-%m-%d)"
  echo
  echo "Command: \`$COMMAND_LINE\`. lifeboat: $LIFEBOAT_SOURCE. Server: $FLAVOUR $VERSION, $KEYS keys, used_memory $(numfmt --to=iec "$USED"), RDB $(numfmt --to=iec "$RDB_SIZE"). Medians of $RUNS alternating runs; $(nproc) CPUs. lifeboat's repository opens with $(key_kind "$REPO_KEY")."
  echo
  echo "| | wall s | CPU s | peak RSS MiB | stored |"
  echo "|---|---:|---:|---:|---:|"
  echo "| $(basename "$CLI") --rdb (to a file) | $CLI_WALL | $(cpu_of rediscli) | $(( $(stat_of rediscli 3) / 1024 )) | $(numfmt --to=iec "$RDB_SIZE") |"
  echo "| lifeboat backup (first, into an empty repository) | $LB_WALL | $(cpu_of lifeboat) | $(( $(stat_of lifeboat 3) / 1024 )) | $(numfmt --to=iec "$STORED") |"
  echo "| lifeboat backup (second, unchanged data) | $(stat_of second 2) | $(cpu_of second) | $(( $(stat_of second 3) / 1024 )) | +$(numfmt --to=iec $((STORED2 - STORED))) |"
  echo "| lifeboat restore online (RESTORE into an empty server, $RESTORED_KEYS keys) | $(stat_of restoreonline 2) | $(cpu_of restoreonline) | $(( $(stat_of restoreonline 3) / 1024 )) | |"
  echo
  echo "Backup time ratio lifeboat / redis-cli: $(awk -v a="$LB_WALL" -v b="$CLI_WALL" 'BEGIN { printf "%.2f", a / b }') (target: at most 1.00)."
} > "$REPORT"
cat "$REPORT"
mkdir -p "$ROOT/bench/results"
cp "$REPORT" "$ROOT/bench/results/redis-$(date -u +%Y-%m-%d)-${FLAVOUR}-${MIB}MiB.md"
