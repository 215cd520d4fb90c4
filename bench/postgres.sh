#!/usr/bin/env bash
# bench/postgres.sh — lifeboat's PostgreSQL engine against pg_dump and pgBackRest, on the same database in
# the same run.
#
#   bench/postgres.sh                      # as root (initdb/postgres run as the postgres user via setpriv)
#   BENCH_PG_SCALE=20 bench/postgres.sh    # a quicker run
#
# A script, not a test: it asserts nothing about speed (about 6 minutes at the default scale on 2 CPUs).
# It starts ONE throwaway PostgreSQL 15 cluster (initdb as the postgres user, 127.0.0.1 only, a free
# port, data under $BENCH_DIR), fills a database `bench` with `pgbench -i -s $BENCH_PG_SCALE` plus a text-heavy table `documents`, then measures:
#
#   1. Logical: `pg_dump -Fc bench` to a local file (pg_dump's default compression: zlib level 6) against
#      `lifeboat backup` of a source with mode logical and that one database; then lifeboat's second
#      backup of the unchanged database (deduplication). Target for lifeboat: its logical backup no
#      slower than pg_dump -Fc alone.
#   2. Physical, for each tool in turn (lifeboat, then pgBackRest; BENCH_PG_ORDER swaps them):
#      - archive_command switched to the tool (ALTER SYSTEM + pg_reload_conf, pg_switch_wal, wait until
#        the archiver has pushed that segment; untimed);
#      - base backup, timed: `lifeboat backup` (source mode physical, baseBackup $BENCH_PG_BASE_BACKUP,
#        default auto: running as postgres on the server's host, lifeboat reads the data directory
#        itself, as pgBackRest does; pg_basebackup streams it with BENCH_PG_BASE_BACKUP=pg_basebackup;
#        then it waits until the backup's last WAL segment is archived) vs `pgbackrest backup
#        --type=full` (which also waits for the backup's WAL to reach its archive);
#      - WAL archiving: archive_command is set to '' (PostgreSQL 15 then keeps every finished segment
#        in pg_wal, marked .ready), pgbench writes $BENCH_PG_SEGMENTS segments of WAL (untimed), then
#        archive_command is set to the tool and the time until the archiver has pushed the backlog (up
#        to a pg_switch_wal after pgbench) is measured, with the CPU time of all archive_command
#        processes (cutime + cstime of the archiver process, which waits for them). Archiving a backlog
#        measures what the archiver can sustain, independent of how fast pgbench happens to write;
#      - restore, timed: `lifeboat restore latest --at latest --target main --yes` into an empty data
#        directory with its own port (lifeboat extracts, writes recovery settings, starts the server and
#        waits until pg_is_in_recovery() is false) vs a script doing `pgbackrest restore
#        --archive-mode=off` into an empty directory, `pg_ctl start` (-W, same options lifeboat passes)
#        and polling pg_is_in_recovery() every 0.5 s as lifeboat does. Both recover to the end of their
#        archive (restore_command = lifeboat wal-fetch / pgbackrest archive-get, one process per file).
#        Afterwards, untimed: pgbench_accounts and documents counts, pgbench_history count and
#        sum(abalance) are compared with the source's at the end of the drain, and a write is tried.
#      - WAL archiving again, after the restore, asynchronous: lifeboat with archive.pushAhead (one
#        wal-push takes up to BENCH_PG_PUSH_AHEAD ready files along; archive_command begins with the
#        shell test of its marker) vs pgBackRest archive-async=y (its archive-push answers from its spool;
#        a detached process pushes ahead with process-max=2). Same backlog size, same timing. CPU is
#        that of the whole machine over the drain (pgBackRest's async process is not the archiver's child).
#   2b. Base backups again, alternating: $BENCH_PG_BASE_ROUNDS rounds, each a lifeboat base backup into a
#      fresh repository (its archive_command switched to it first, untimed) and a pgBackRest full backup
#      (archive_command switched back), the first tool of a round alternating. The single base backups
#      of step 2 are minutes apart, and this machine's speed drifts by tens of percent within minutes;
#      the median of alternating rounds is the figure to read.
#   2c. Restores and asynchronous WAL drains again, alternating, for the same reason: $BENCH_PG_ROUNDS
#      rounds of both tools' restores (each tool's step-2 base backup to the end of its archive, now both
#      WAL steps: ~130 segments; untimed check of pgbench_accounts), then $BENCH_PG_ROUNDS rounds of
#      asynchronous drains of a fresh backlog each. It runs before 2b, whose pgBackRest full backups would
#      otherwise become the backup pgBackRest restores.
#   3. Per-segment push latency: $BENCH_PG_PUSH_SEGMENTS copies of real 16 MiB segments from the first
#      pgbench run, each pushed by hand (`lifeboat wal-push`, `pgbackrest archive-push`) into a fresh
#      repository / stanza, each push timed with GNU time; mean wall and CPU, max RSS.
#
# One cluster or two: ONE. Both tools then back up exactly the same files, and the same pgbench and
# WAL settings produce their WAL; switching archive_command is a reload, not a restart. The cost: the
# second tool's phase sees the cluster after the first tool's pgbench run (pgbench_history a little
# longer, some dead tuples), a difference of well under 1% of the data at the default scale.
# Two identical clusters would double the disk and load time and would drift apart just as much.
#
# Fairness choices:
#   - Every tool command runs as the postgres user (setpriv), as on a database host; archive_command
#     runs as postgres anyway. pg_dump, lifeboat and pgBackRest all connect locally (pg_dump and
#     lifeboat over TCP 127.0.0.1 with scram; pgBackRest over the Unix socket, its usual way).
#   - `sync` runs before every timed step. Page caches are not dropped: the cluster (~1.6 GiB at scale
#     100) stays in the page cache of a 24 GiB machine for every tool alike. The database is VACUUM
#     FREEZEd after loading so that no reader dirties pages (hint bits) during a timed step.
#   - pg_dump -Fc writes its file with its default compression (zlib 6) and fsyncs it (its default);
#     lifeboat runs pg_dump -Fc --compress=0 and compresses (zstd 3), encrypts (AES-256-GCM) and
#     deduplicates in the repository; it also dumps globals (pg_dumpall -g) and counts rows in the dump's
#     snapshot. Process start is in every timed lifeboat step.
#   - lifeboat's repositories open with a generated key (`lifeboat key generate`: 256 random bits, HKDF,
#     no scrypt), the setup docs recommend for hosts that run wal-push; pgBackRest's repo1-cipher-pass
#     is used without a KDF too. (Builds before generated keys use the password and pay scrypt.)
#   - pgBackRest (Debian's package, installed here if missing) uses: compress-type=zst, compress-level=3
#     (lifeboat's zstd level), process-max=2 (lifeboat's two worker threads), repo1-cipher-type=
#     aes-256-cbc with a passphrase (lifeboat always encrypts), start-fast=y (lifeboat's pg_basebackup
#     runs with -c fast), archive-async=n (its default: one archive-push process per segment, as with
#     lifeboat wal-push), log-level-file=info (its default). Its repository is a local directory on
#     the same disk as lifeboat's.
#   - lifeboat uses its defaults: zstd level 3, two worker threads, 16 MiB packs, local repository.
#   - Restore times end when the server has left recovery (pg_is_in_recovery() false, so it accepts
#     writes); both restores start their server with the same pg_ctl options. CPU and RSS of a restore
#     are those of the command (lifeboat's process, which extracts the tar itself; pgbackrest restore
#     with its workers);
#     the server and the restore_command processes it runs are not children of it and are not counted,
#     for either tool.
#   - lifeboat runs through its CLI, built by tsc from a copy of src/ (work tree, or BENCH_LIFEBOAT_REF)
#     into the scratch dir, node_modules hard-linked, so concurrent edits of the work tree do not change
#     it mid-run (as in bench/repository.sh).
#
# Environment:
#   BENCH_PG_SCALE          pgbench scale (default 100: pgbench_accounts 10 M rows, ~1.5 GiB with indexes)
#   BENCH_PG_TEXT_ROWS      rows of the text-heavy table `documents` (default scale × 2000, ~600 B each)
#   BENCH_PG_SEGMENTS       WAL segments (16 MiB) pgbench writes for each tool's archiving step (default 64)
#   BENCH_PG_PUSH_SEGMENTS  segments pushed by hand per tool for the push latency (default 10)
#   BENCH_PG_PUSH_AHEAD     lifeboat's archive.pushAhead in the asynchronous WAL step (default 32)
#   BENCH_PG_BASE_ROUNDS    alternating base-backup rounds of step 2b (default 3; 0 skips the step)
#   BENCH_PG_ROUNDS         alternating restore rounds and asynchronous-drain rounds of step 2c (default 3;
#                           0 skips the step)
#   BENCH_PG_ORDER          order of the physical phases (default "lifeboat pgbackrest")
#   BENCH_DIR               scratch directory (default /tmp/lifeboat-bench-pg); emptied at the start,
#                           clusters, repositories and dumps removed at the end (logs and the report kept)
#   BENCH_KEEP              1 keeps everything in BENCH_DIR at the end (servers are stopped anyway)
#   BENCH_LIFEBOAT_REF      build lifeboat from this commit (git archive) instead of the work tree's src/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCALE="${BENCH_PG_SCALE:-100}"
TEXT_ROWS="${BENCH_PG_TEXT_ROWS:-$((SCALE * 2000))}"
SEGMENTS="${BENCH_PG_SEGMENTS:-64}"
PUSH_SEGMENTS="${BENCH_PG_PUSH_SEGMENTS:-10}"
PUSH_AHEAD="${BENCH_PG_PUSH_AHEAD:-32}"
BASE_ROUNDS="${BENCH_PG_BASE_ROUNDS:-3}"
ROUNDS="${BENCH_PG_ROUNDS:-3}"
BASE_METHOD="${BENCH_PG_BASE_BACKUP:-auto}" # written into lifeboat's config only when set (builds before it lack the key)
ORDER="${BENCH_PG_ORDER:-lifeboat pgbackrest}"
SCRATCH="${BENCH_DIR:-/tmp/lifeboat-bench-pg}"
KEEP="${BENCH_KEEP:-0}"
LIFEBOAT_REF="${BENCH_LIFEBOAT_REF:-}"
PG_BIN=/usr/lib/postgresql/15/bin
BUILD="$SCRATCH/build"
SOURCE_DATA="$SCRATCH/source"
SOCKETS="$SCRATCH/run"
PASSWORD="lifeboat-bench-password"
COMMAND_LINE="$(for name in BENCH_PG_SCALE BENCH_PG_TEXT_ROWS BENCH_PG_SEGMENTS BENCH_PG_PUSH_SEGMENTS BENCH_PG_PUSH_AHEAD BENCH_PG_BASE_ROUNDS BENCH_PG_ROUNDS BENCH_PG_BASE_BACKUP BENCH_PG_ORDER BENCH_DIR BENCH_KEEP BENCH_LIFEBOAT_REF; do
  if [ -n "${!name:-}" ]; then printf '%s=%q ' "$name" "${!name}"; fi
done)bench/postgres.sh${*:+ $*}"

export PGPASSWORD="$PASSWORD"
NODE="$(command -v node)"

log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

for value in "$SCALE" "$TEXT_ROWS" "$SEGMENTS" "$PUSH_SEGMENTS" "$PUSH_AHEAD"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { log "BENCH_PG_* values must be whole numbers (got $value)"; exit 2; }
done
[ "$SCALE" -gt 0 ] && [ "$SEGMENTS" -gt 0 ] || { log "BENCH_PG_SCALE and BENCH_PG_SEGMENTS must be positive"; exit 2; }
[ "$(id -u)" -eq 0 ] || { log "run as root: clusters and tools run as the postgres user through setpriv"; exit 2; }
id postgres >/dev/null 2>&1 || { log "no postgres system user: install postgresql-15 (scripts/provision.sh)"; exit 2; }
[ -x "$PG_BIN/initdb" ] || { log "no $PG_BIN/initdb: install postgresql-15 (scripts/provision.sh)"; exit 2; }
case "$SCRATCH" in /tmp/* | /var/tmp/*) ;; *) log "BENCH_DIR must be under /tmp or /var/tmp (it is emptied)"; exit 2 ;; esac
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_STARTED=$(date +%s)

# as_pg CMD...: argv prefix that runs CMD as the postgres user, in the scratch dir's HOME.
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups env "HOME=$SCRATCH/home")
as_pg() { (cd "$SCRATCH" && "${AS_PG[@]}" "$@"); }

# --- cleanup: servers stopped, big files removed (also of a killed earlier run, at the start) ---------
PGBENCH_PID=""
stop_server() { # stop_server DATA_DIR
  if [ -f "$1/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" stop -D "$1" -m immediate -w -t 60 >/dev/null 2>&1 || true
  fi
}
cleanup() {
  if [ -n "$PGBENCH_PID" ]; then kill "$PGBENCH_PID" 2>/dev/null || true; fi
  for dir in "$SCRATCH/restore-lifeboat" "$SCRATCH/restore-pgbackrest" "$SOURCE_DATA"; do stop_server "$dir"; done
  if [ "$KEEP" != 1 ]; then
    rm -rf "$SOURCE_DATA" "$SCRATCH"/restore-* "$SCRATCH"/repo-* "$SCRATCH"/*-spool "$SCRATCH/segments" "$SCRATCH/bench.dump"
  fi
}
if [ -d "$SCRATCH" ]; then cleanup; fi
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites -----------------------------------------------------------------------------------
apt_install() { # apt_install PACKAGE [BINARY]: idempotent
  if ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; then
    log "installing $1 (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }
  fi
}
/usr/bin/time -f '%e' true 2>/dev/null || apt_install time
apt_install pgbackrest
PGBACKREST="$(command -v pgbackrest)"

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH" "$BUILD/bin"
build_lifeboat "$ROOT" "$BUILD" "$LIFEBOAT_REF"
log "built lifeboat ($LIFEBOAT_SOURCE) into $BUILD"
chmod -R a+rX "$BUILD/dist" "$BUILD/bin" "$BUILD/package.json"
LIFEBOAT=("$NODE" "$BUILD/bin/lifeboat.js")
# lifeboat's repositories open with a generated key (no KDF), as pgBackRest's repo1-cipher-pass is used
# without one; builds before `key generate` use the password (and pay scrypt in every step).
REPO_KEY=$(repository_key "$PASSWORD")

# Everything but the build belongs to postgres: archive_command, restores and backups run as it.
mkdir -p "$SCRATCH/home" "$SOCKETS" "$SCRATCH/logs/pgbackrest" "$SCRATCH/segments"
chown postgres:postgres "$SCRATCH" "$SCRATCH/home" "$SOCKETS" "$SCRATCH/logs" "$SCRATCH/logs/pgbackrest" "$SCRATCH/segments"
chmod 755 "$SCRATCH"

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
PORT=$(free_port)
LIFEBOAT_PORT=$(free_port)
PGBACKREST_PORT=$(free_port)
while [ "$LIFEBOAT_PORT" = "$PORT" ]; do LIFEBOAT_PORT=$(free_port); done
while [ "$PGBACKREST_PORT" = "$PORT" ] || [ "$PGBACKREST_PORT" = "$LIFEBOAT_PORT" ]; do PGBACKREST_PORT=$(free_port); done

# psql_at PORT DB SQL: one value (or rows), unaligned, as the superuser over TCP.
psql_at() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$2" -c "$3"; }
sql() { psql_at "$PORT" "${2:-postgres}" "$1"; }

# --- the source cluster and its data -----------------------------------------------------------------
log "initdb $SOURCE_DATA (PostgreSQL 15, port $PORT)"
printf '%s\n' "$PASSWORD" > "$SCRATCH/pwfile"
chown postgres:postgres "$SCRATCH/pwfile"
as_pg "$PG_BIN/initdb" -D "$SOURCE_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --pwfile="$SCRATCH/pwfile" --encoding=UTF8 --locale=C --no-instructions >"$SCRATCH/logs/initdb.log" 2>&1
rm -f "$SCRATCH/pwfile"
cat >>"$SOURCE_DATA/postgresql.conf" <<EOF

# bench/postgres.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKETS'
max_wal_size = 4GB
synchronous_commit = off
include_if_exists = 'bench-wal.conf'
EOF
# Loading with wal_level minimal (no WAL for the bulk COPY), then replica with archiving for the rest.
printf "wal_level = minimal\nmax_wal_senders = 0\narchive_mode = off\n" > "$SOURCE_DATA/bench-wal.conf"
chown postgres:postgres "$SOURCE_DATA/bench-wal.conf"
start_source() {
  as_pg "$PG_BIN/pg_ctl" start -D "$SOURCE_DATA" -l "$SCRATCH/logs/source.log" -w -t 120 >/dev/null
}
start_source

log "loading: pgbench -i -s $SCALE, documents ($TEXT_ROWS rows)"
sql "CREATE DATABASE bench"
LOAD_T0=$(date +%s)
"$PG_BIN/pgbench" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PORT" -U postgres bench >"$SCRATCH/logs/pgbench-init.log" 2>&1
sql "CREATE TABLE documents (id bigint PRIMARY KEY, created timestamptz NOT NULL, title text NOT NULL, body text NOT NULL);
INSERT INTO documents
SELECT g, timestamptz '2026-01-01 00:00+00' + g * interval '17 seconds', 'document ' || g,
       (SELECT string_agg(w[1 + (hashint8(g * 100 + i) & 2147483647) % 64], ' ')
          FROM generate_series(1, 80) i)
  FROM generate_series(1, $TEXT_ROWS) g,
       (SELECT ARRAY['backup','restore','archive','segment','replica','primary','standby','snapshot',
        'repository','encrypt','compress','chunk','index','table','vector','graph','cache','search',
        'the','a','of','and','to','in','is','for','on','with','as','by','at','from','this','that',
        'point','time','recovery','objective','drill','schedule','retention','policy','bucket','object',
        'lock','key','password','server','client','query','transaction','commit','rollback','checkpoint',
        'tenant','customer','order','invoice','payment','shipment','address','product','review','comment'] AS w) words" bench
sql "VACUUM (FREEZE, ANALYZE)" bench
DB_BYTES=$(sql "SELECT pg_database_size('bench')")
ACCOUNTS_EXPECTED=$((SCALE * 100000))
log "loaded in $(($(date +%s) - LOAD_T0)) s: database bench is $(awk -v b="$DB_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }') MiB"

# Archiving on, with an empty archive_command until a tool is chosen (PostgreSQL 15 keeps the WAL).
printf "wal_level = replica\nmax_wal_senders = 10\narchive_mode = on\n" > "$SOURCE_DATA/bench-wal.conf"
as_pg "$PG_BIN/pg_ctl" stop -D "$SOURCE_DATA" -m fast -w >/dev/null
start_source
sql "ALTER SYSTEM SET archive_command = ''"
sql "SELECT pg_reload_conf()" >/dev/null
sql "CHECKPOINT"

# --- measurement helpers -------------------------------------------------------------------------------
# results[key] = "wall rss_kib user sys", or "failed"; values[key] = number; notes[tool] = text
declare -A results=() values=() notes=() commands=()
FAILED=0

# timed KEY TOOL CMD...: runs CMD as postgres under GNU time, stdout/stderr to $SCRATCH/logs/KEY.*
timed() {
  local key=$1 tool=$2
  shift 2
  local tfile="$SCRATCH/logs/$key.time" out="$SCRATCH/logs/$key.out" err="$SCRATCH/logs/$key.stderr"
  commands[$key]="$*"
  sync
  log "$tool: $key"
  if (cd "$SCRATCH" && /usr/bin/time -f '%e %M %U %S' -o "$tfile" "${AS_PG[@]}" "$@" >"$out" 2>"$err"); then
    results[$key]="$(tail -n1 "$tfile")"
    log "$tool: $key: $(tail -n1 "$tfile" | awk '{printf "%.2f s, CPU %.2f s, peak RSS %.0f MiB", $1, $3 + $4, $2/1024}')"
    return 0
  fi
  FAILED=1
  results[$key]="failed"
  notes[$tool]+="$key failed ($(grep -m1 'exit' "$tfile" || echo 'no status')): $(tail -c 800 "$err" | tr '\n' ' ')"$'\n'
  log "$tool: $key FAILED; stderr tail:"
  tail -n 20 "$err" >&2
  return 1
}
fail_note() { FAILED=1; notes[$1]+="$2"$'\n'; log "$1: $2"; }
du_bytes() { du -sb "$1" | cut -f1; }

set_archive_command() { # set_archive_command COMMAND [nowait]
  sql "ALTER SYSTEM SET archive_command = '${1//\'/\'\'}'"
  sql "SELECT pg_reload_conf()" >/dev/null
  # The archiver rereads its configuration on the SIGHUP the reload sends; a timed drain starts at the
  # reload instead (its clock runs until the archiver is done, whenever it took the new command).
  if [ "${2:-}" != nowait ]; then sleep 1; fi
}
# wait_archived SEGMENT TIMEOUT_S: until pg_stat_archiver's last archived file is at or past SEGMENT.
wait_archived() {
  local segment=$1 deadline=$(($(date +%s) + $2)) last
  while true; do
    last=$(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    if [ -n "$last" ] && [[ ! "${last:0:24}" < "$segment" ]]; then return 0; fi
    if [ "$(date +%s)" -gt "$deadline" ]; then return 1; fi
    sleep 0.1
  done
}
switch_wal() { sql "SELECT pg_walfile_name(pg_switch_wal())"; }
archiver_children_ticks() { # cutime + cstime of the archiver: CPU of the archive_command runs it waited for
  local pid
  pid=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'archiver'")
  sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $14 + $15 }'
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; } # user nice system irq softirq
source_state() { # what a restore to the end of the archive must have
  sql "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history) || ' ' ||
              (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM documents)" bench
}

# pgbench_segments KEY: pgbench (2 clients, TPC-B-like) until SEGMENTS × 16 MiB of WAL are written.
pgbench_segments() {
  local start bytes target=$((SEGMENTS * 16777216))
  start=$(sql "SELECT pg_current_wal_lsn()")
  "$PG_BIN/pgbench" -n -c 2 -j 2 -T 3600 -h 127.0.0.1 -p "$PORT" -U postgres bench >"$SCRATCH/logs/$1.pgbench.log" 2>&1 &
  PGBENCH_PID=$!
  while true; do
    sleep 0.2
    bytes=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start')::bigint")
    if [ "$bytes" -ge "$target" ]; then break; fi
    if ! kill -0 "$PGBENCH_PID" 2>/dev/null; then
      log "pgbench stopped early:"
      tail -n 5 "$SCRATCH/logs/$1.pgbench.log" >&2
      break
    fi
  done
  kill -TERM "$PGBENCH_PID" 2>/dev/null || true # (a background job of a script ignores SIGINT)
  wait "$PGBENCH_PID" 2>/dev/null || true
  PGBENCH_PID=""
}

# lifeboat_account FILE: what `lifeboat backup --json` says it read and stored.
lifeboat_account() {
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const s = r.sources[0]; const mib = (b) => (b / 1048576).toFixed(1);
    process.stdout.write(`${mib(s.bytesRead)} MiB read, ${mib(s.bytesNew)} MiB new, ${s.seconds.toFixed(1)} s inside the command`);
  ' "$1" 2>/dev/null || echo 'no JSON result'
}

# --- 1. logical: pg_dump -Fc vs lifeboat backup --------------------------------------------------------
LOGICAL_CONFIG="$SCRATCH/lifeboat-logical.yaml"
cat >"$LOGICAL_CONFIG" <<EOF
repository:
  url: $SCRATCH/repo-lifeboat-logical
  password: $REPO_KEY
sources:
  bench:
    engine: postgres
    url: postgres://postgres:$PASSWORD@127.0.0.1:$PORT/bench
    mode: logical
EOF
chown postgres:postgres "$LOGICAL_CONFIG" && chmod 600 "$LOGICAL_CONFIG"

timed pgdump.backup pg_dump "$PG_BIN/pg_dump" -Fc -h 127.0.0.1 -p "$PORT" -U postgres -f "$SCRATCH/bench.dump" bench &&
  values[pgdump.stored]=$(stat -c %s "$SCRATCH/bench.dump")

if as_pg "${LIFEBOAT[@]}" -c "$LOGICAL_CONFIG" init >"$SCRATCH/logs/lifeboat-logical.init.log" 2>&1; then
  values[lifeboat.logical.empty]=$(du_bytes "$SCRATCH/repo-lifeboat-logical")
  if timed lifeboat.logical1 lifeboat "${LIFEBOAT[@]}" -c "$LOGICAL_CONFIG" backup --json; then
    values[lifeboat.logical1.stored]=$(du_bytes "$SCRATCH/repo-lifeboat-logical")
    if timed lifeboat.logical2 lifeboat "${LIFEBOAT[@]}" -c "$LOGICAL_CONFIG" backup --json; then
      values[lifeboat.logical2.stored]=$(du_bytes "$SCRATCH/repo-lifeboat-logical")
    fi
    for n in 1 2; do
      notes[lifeboat]+="logical backup $n, as lifeboat reports it: $(lifeboat_account "$SCRATCH/logs/lifeboat.logical$n.out") (pg_dump --compress=0 + globals)"$'\n'
    done
  fi
else
  fail_note lifeboat "init (logical repository) failed: $(tail -c 600 "$SCRATCH/logs/lifeboat-logical.init.log" | tr '\n' ' ')"
fi

# --- 2. physical: base backup, WAL archiving, restore ------------------------------------------------
LIFEBOAT_CONFIG="$SCRATCH/lifeboat.yaml"
cat >"$LIFEBOAT_CONFIG" <<EOF
repository:
  url: $SCRATCH/repo-lifeboat
  password: $REPO_KEY
sources:
  main:
    engine: postgres
    url: postgres://postgres:$PASSWORD@127.0.0.1:$PORT/postgres
    mode: physical${BENCH_PG_BASE_BACKUP:+
    baseBackup: $BENCH_PG_BASE_BACKUP}
    archive:
      checkTimeout: 600s
drills:
  targets:
    main:
      url: postgres://postgres:$PASSWORD@127.0.0.1:$LIFEBOAT_PORT/postgres
      dataDirectory: $SCRATCH/restore-lifeboat
      port: $LIFEBOAT_PORT
EOF
LIFEBOAT_ARCHIVE_COMMAND="$NODE $BUILD/bin/lifeboat.js --config $LIFEBOAT_CONFIG wal-push --source main %p"
LIFEBOAT_ASYNC_CONFIG="$SCRATCH/lifeboat-async.yaml"
LIFEBOAT_SPOOL="$SCRATCH/lifeboat-spool"
sed -e "s#^      checkTimeout: 600s\$#      checkTimeout: 600s\n      pushAhead: $PUSH_AHEAD\n      spoolDirectory: $LIFEBOAT_SPOOL#" "$LIFEBOAT_CONFIG" >"$LIFEBOAT_ASYNC_CONFIG"
grep -q "pushAhead: $PUSH_AHEAD" "$LIFEBOAT_ASYNC_CONFIG" || { log "could not write $LIFEBOAT_ASYNC_CONFIG"; exit 1; }
chown postgres:postgres "$LIFEBOAT_ASYNC_CONFIG" && chmod 600 "$LIFEBOAT_ASYNC_CONFIG"
LIFEBOAT_ASYNC_ARCHIVE_COMMAND="[ $LIFEBOAT_SPOOL/%f.ok -nt %p ] && rm -f $LIFEBOAT_SPOOL/%f.ok || $NODE $BUILD/bin/lifeboat.js --config $LIFEBOAT_ASYNC_CONFIG wal-push --source main %p"

PGBACKREST_CONFIG="$SCRATCH/pgbackrest.conf"
pgbackrest_config() { # pgbackrest_config FILE REPO
  cat >"$1" <<EOF
[global]
repo1-path=$2
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$PASSWORD
repo1-retention-full=2
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-async=n
log-path=$SCRATCH/logs/pgbackrest
lock-path=$SCRATCH/pgbackrest-lock
spool-path=$SCRATCH/pgbackrest-spool
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$SOURCE_DATA
pg1-port=$PORT
pg1-socket-path=$SOCKETS
pg1-user=postgres
EOF
  chown postgres:postgres "$1" && chmod 600 "$1"
}
pgbackrest_config "$PGBACKREST_CONFIG" "$SCRATCH/repo-pgbackrest"
PGBACKREST_ARCHIVE_COMMAND="$PGBACKREST --config=$PGBACKREST_CONFIG --stanza=bench archive-push %p"
PGBACKREST_ASYNC_CONFIG="$SCRATCH/pgbackrest-async.conf"
pgbackrest_config "$PGBACKREST_ASYNC_CONFIG" "$SCRATCH/repo-pgbackrest"
sed -i 's/^archive-async=n$/archive-async=y/' "$PGBACKREST_ASYNC_CONFIG"
PGBACKREST_ASYNC_ARCHIVE_COMMAND="$PGBACKREST --config=$PGBACKREST_ASYNC_CONFIG --stanza=bench archive-push %p"
chown postgres:postgres "$LIFEBOAT_CONFIG" && chmod 600 "$LIFEBOAT_CONFIG"

# The pgBackRest restore as one timed command: restore, start (as lifeboat starts its server), wait.
cat >"$SCRATCH/pgbackrest-restore.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
dir=$SCRATCH/restore-pgbackrest
$PGBACKREST --config=$PGBACKREST_CONFIG --stanza=bench --pg1-path="\$dir" --archive-mode=off restore
$PG_BIN/pg_ctl start -D "\$dir" -l "\$dir/recovery.log" -W \\
  -o "-p $PGBACKREST_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='\$dir' -c logging_collector=off" >/dev/null
started=\$(date +%s)
for (( ; ; )); do
  sleep 0.5
  if [ "\$($PG_BIN/psql -X -At -h 127.0.0.1 -p $PGBACKREST_PORT -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; then exit 0; fi
  if [ ! -f "\$dir/postmaster.pid" ] && [ \$((\$(date +%s) - started)) -gt 15 ]; then
    echo "the restored server stopped during recovery:" >&2; tail -n 12 "\$dir/recovery.log" >&2; exit 1
  fi
done
EOF
chmod 755 "$SCRATCH/pgbackrest-restore.sh"


# wal_backlog TOOL KEY ARCHIVE_COMMAND REPO FIRST: a backlog of SEGMENTS segments written by pgbench while
# archive_command is empty, then the time until ARCHIVE_COMMAND has drained it; values under TOOL.KEY.*.
# CPU: of the archive_command processes (children of the archiver), and of the whole machine over the
# drain (pgBackRest's async process runs detached, outside the archiver's children).
wal_backlog() {
  local tool=$1 key=$2 archive_command=$3 repo=$4 first=$5 segment ready
  set_archive_command ''
  log "$tool: pgbench until $SEGMENTS segments of WAL are written (archiving paused)"
  pgbench_segments "$tool.$key"
  segment=$(switch_wal)
  ready=$(find "$SOURCE_DATA/pg_wal/archive_status" -name '*.ready' | grep -cE '/[0-9A-F]{24}\.ready$' || true)
  values[$tool.$key.segments]=$ready
  if [ "$first" = 1 ]; then # copies of real segments for the hand-pushed latency step
    local names name
    mapfile -t names < <(find "$SOURCE_DATA/pg_wal/archive_status" -name '*.ready' -printf '%f\n' |
      sed -n 's/^\([0-9A-F]\{24\}\)\.ready$/\1/p' | sort)
    for name in "${names[@]:0:$PUSH_SEGMENTS}"; do cp "$SOURCE_DATA/pg_wal/$name" "$SCRATCH/segments/$name"; done
    chown -R postgres:postgres "$SCRATCH/segments"
  fi
  values[$tool.$key.before]=$(du_bytes "$repo")
  local failed_before ticks_before machine_before t0 t1 ticks_after machine_after
  failed_before=$(sql "SELECT failed_count FROM pg_stat_archiver")
  ticks_before=$(archiver_children_ticks)
  sync
  log "$tool: archiving $ready segments ($key; timed: archive_command set until the archiver reaches $segment)"
  machine_before=$(machine_ticks)
  t0=$(date +%s.%N)
  set_archive_command "$archive_command" nowait
  if ! wait_archived "$segment" 3600; then
    fail_note "$tool" "the archiver did not drain the backlog up to $segment within 3600 s"
    return 1
  fi
  t1=$(date +%s.%N)
  machine_after=$(machine_ticks)
  ticks_after=$(archiver_children_ticks)
  local hz
  hz=$(getconf CLK_TCK)
  values[$tool.$key.seconds]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  values[$tool.$key.cpu]=$(awk -v a="$ticks_before" -v b="$ticks_after" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  values[$tool.$key.machine]=$(awk -v a="$machine_before" -v b="$machine_after" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  values[$tool.$key.after]=$(du_bytes "$repo")
  local failures=$(($(sql "SELECT failed_count FROM pg_stat_archiver") - failed_before))
  if [ "$failures" -gt 0 ]; then notes[$tool]+="$key: archive_command failed $failures times during the drain (PostgreSQL retried; see $SCRATCH/logs/source.log)"$'\n'; fi
  log "$tool: archived $ready segments in ${values[$tool.$key.seconds]} s, archive_command CPU ${values[$tool.$key.cpu]} s, machine CPU ${values[$tool.$key.machine]} s"
}

# The restored server's own account of a restore, from the log it wrote in the data directory (kept as
# logs/KEY.recovery.log): KEY.recovery.seconds from its start to the end of recovery, KEY.redo.seconds
# its replay ("redo done ... elapsed"), KEY.recovery.files the WAL files restore_command gave it.
recovery_account() { # recovery_account DATA_DIRECTORY KEY
  local dir=$1 key=$2 log="$SCRATCH/logs/$2.recovery.log" started ready
  cp "$dir"/*recovery.log "$log" 2>/dev/null || return 0
  started=$(grep -m1 'starting PostgreSQL' "$log" | cut -c1-27 || true)
  ready=$(grep -m1 'database system is ready to accept connections' "$log" | cut -c1-27 || true)
  if [ -n "$started" ] && [ -n "$ready" ]; then
    values[$key.recovery.seconds]=$(awk -v a="$(date -d "$started" +%s.%N)" -v b="$(date -d "$ready" +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    values[$key.recovery.files]=$(grep -c 'restored log file' "$log" || true)
  fi
  values[$key.redo.seconds]=$(grep -m1 -o 'redo done at .* elapsed: [0-9.]* s' "$log" | sed 's/.*elapsed: \([0-9.]*\) s/\1/' || true)
}

physical_phase() { # physical_phase TOOL
  local tool=$1 repo archive_command restore_dir restore_port segment ready first=$2
  case $tool in
    lifeboat)
      repo="$SCRATCH/repo-lifeboat" archive_command=$LIFEBOAT_ARCHIVE_COMMAND
      restore_dir="$SCRATCH/restore-lifeboat" restore_port=$LIFEBOAT_PORT
      if ! as_pg "${LIFEBOAT[@]}" -c "$LIFEBOAT_CONFIG" init >"$SCRATCH/logs/lifeboat.init.log" 2>&1; then
        fail_note lifeboat "init failed: $(tail -c 600 "$SCRATCH/logs/lifeboat.init.log" | tr '\n' ' ')"
        return 0
      fi
      ;;
    pgbackrest)
      repo="$SCRATCH/repo-pgbackrest" archive_command=$PGBACKREST_ARCHIVE_COMMAND
      restore_dir="$SCRATCH/restore-pgbackrest" restore_port=$PGBACKREST_PORT
      if ! as_pg "$PGBACKREST" --config="$PGBACKREST_CONFIG" --stanza=bench stanza-create >"$SCRATCH/logs/pgbackrest.stanza.log" 2>&1; then
        fail_note pgbackrest "stanza-create failed: $(tail -c 600 "$SCRATCH/logs/pgbackrest.stanza.log" | tr '\n' ' ')"
        return 0
      fi
      ;;
  esac
  log "$tool: archive_command = $archive_command"
  set_archive_command "$archive_command"
  segment=$(switch_wal)
  if ! wait_archived "$segment" 300; then
    fail_note "$tool" "the archiver did not push $segment within 300 s (see $SCRATCH/logs/source.log)"
    return 0
  fi
  if [ "$tool" = pgbackrest ]; then
    as_pg "$PGBACKREST" --config="$PGBACKREST_CONFIG" --stanza=bench check >"$SCRATCH/logs/pgbackrest.check.log" 2>&1 ||
      fail_note pgbackrest "check failed: $(tail -c 600 "$SCRATCH/logs/pgbackrest.check.log" | tr '\n' ' ')"
  fi

  # Base backup.
  values[$tool.base.before]=$(du_bytes "$repo")
  case $tool in
    lifeboat) timed lifeboat.base lifeboat "${LIFEBOAT[@]}" -c "$LIFEBOAT_CONFIG" backup --json || return 0 ;;
    pgbackrest) timed pgbackrest.base pgbackrest "$PGBACKREST" --config="$PGBACKREST_CONFIG" --stanza=bench --type=full backup || return 0 ;;
  esac
  values[$tool.base.after]=$(du_bytes "$repo")
  case $tool in
    lifeboat) notes[lifeboat]+="base backup, as lifeboat reports it: $(lifeboat_account "$SCRATCH/logs/lifeboat.base.out")"$'\n' ;;
    pgbackrest)
      notes[pgbackrest]+="base backup, as pgBackRest reports it: $(as_pg "$PGBACKREST" --config="$PGBACKREST_CONFIG" --stanza=bench info --output=json 2>/dev/null | node -e '
        const info = JSON.parse(require("fs").readFileSync(0, "utf8"))[0];
        const b = info.backup[info.backup.length - 1]; const mib = (x) => (x / 1048576).toFixed(1);
        process.stdout.write(`database ${mib(b.info.size)} MiB, backup ${mib(b.info.repository.delta)} MiB in the repository, WAL ${b.archive.start}..${b.archive.stop}`);
      ' 2>/dev/null || echo 'no info')"$'\n'
      ;;
  esac

  # WAL archiving, one archive_command process per file (pgBackRest archive-async=n, lifeboat without push-ahead).
  wal_backlog "$tool" wal "$archive_command" "$repo" "$first" || return 0
  local expected
  expected=$(source_state)

  # Restore into an empty directory, recovery to the end of the archive.
  rm -rf "$restore_dir"
  mkdir -m 700 "$restore_dir" && chown postgres:postgres "$restore_dir"
  case $tool in
    lifeboat) timed lifeboat.restore lifeboat "${LIFEBOAT[@]}" -c "$LIFEBOAT_CONFIG" restore latest --at latest --target main --yes --json ;;
    pgbackrest) timed pgbackrest.restore pgbackrest "$SCRATCH/pgbackrest-restore.sh" ;;
  esac
  local got
  if got=$(psql_at "$restore_port" bench "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history) || ' ' ||
              (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM documents)" 2>&1); then
    read -r accounts history balance documents <<<"$got"
    if [ "$got" = "$expected" ] && [ "$accounts" = "$ACCOUNTS_EXPECTED" ]; then
      notes[$tool]+="restore verified (untimed): pgbench_accounts $accounts rows, pgbench_history $history rows, sum(abalance) $balance, documents $documents rows: as on the source after the drain"$'\n'
    else
      fail_note "$tool" "restore DIFFERS from the source (accounts history sum(abalance) documents): restored \`$got\`, source \`$expected\`, expected accounts $ACCOUNTS_EXPECTED"
    fi
    if psql_at "$restore_port" bench "CREATE TABLE bench_write_check (n int); DROP TABLE bench_write_check" >/dev/null 2>&1; then
      notes[$tool]+="restored server accepts writes"$'\n'
    else
      fail_note "$tool" "restored server refuses writes"
    fi
  else
    fail_note "$tool" "restored server not queryable: $(echo "$got" | tail -c 300 | tr '\n' ' ')"
  fi
  recovery_account "$restore_dir" "$tool"
  stop_server "$restore_dir"
  rm -rf "$restore_dir"

  # WAL archiving, asynchronous: lifeboat push-ahead (archive.pushAhead, the shell test before
  # wal-push) vs pgBackRest archive-async=y (spool, detached archive-push-async process).
  case $tool in
    lifeboat) wal_backlog lifeboat async "$LIFEBOAT_ASYNC_ARCHIVE_COMMAND" "$repo" 0 || return 0 ;;
    pgbackrest) wal_backlog pgbackrest async "$PGBACKREST_ASYNC_ARCHIVE_COMMAND" "$repo" 0 || return 0 ;;
  esac
}

first=1
for tool in $ORDER; do
  case $tool in lifeboat | pgbackrest) ;; *) log "BENCH_PG_ORDER: unknown tool $tool"; exit 2 ;; esac
  physical_phase "$tool" "$first"
  first=0
done
set_archive_command ''

# --- 2c. restores and asynchronous WAL drains again, alternating rounds ---------------------------------
# Step 2 restores and drains once per tool, minutes apart, and this machine's speed drifts by tens of
# percent within minutes: the medians of alternating rounds are the figures to read. A restore round
# restores each tool's latest backup (its step-2 base backup) to the end of its archive (by now both
# WAL steps of step 2: about 130 segments for either tool), checks pgbench_accounts and stops the server;
# an asynchronous round is step 2's asynchronous drain of a fresh backlog.
restore_round() { # restore_round TOOL ROUND
  local tool=$1 round=$2 dir port got
  case $tool in
    lifeboat) dir="$SCRATCH/restore-lifeboat" port=$LIFEBOAT_PORT ;;
    pgbackrest) dir="$SCRATCH/restore-pgbackrest" port=$PGBACKREST_PORT ;;
  esac
  rm -rf "$dir"
  mkdir -m 700 "$dir" && chown postgres:postgres "$dir"
  case $tool in
    lifeboat) timed "lifeboat.restore.r$round" lifeboat "${LIFEBOAT[@]}" -c "$LIFEBOAT_CONFIG" restore latest --at latest --target main --yes --json || true ;;
    pgbackrest) timed "pgbackrest.restore.r$round" pgbackrest "$SCRATCH/pgbackrest-restore.sh" || true ;;
  esac
  got=$(psql_at "$port" bench "SELECT count(*) FROM pgbench_accounts" 2>&1) || got="(not queryable: $(echo "$got" | tail -c 200 | tr '\n' ' '))"
  if [ "$got" != "$ACCOUNTS_EXPECTED" ]; then
    fail_note "$tool" "restore round $round: pgbench_accounts has $got rows, expected $ACCOUNTS_EXPECTED"
  fi
  recovery_account "$dir" "$tool.restore.r$round"
  stop_server "$dir"
  rm -rf "$dir"
}
declare -a RESTORE_ROUND_KEYS=() ASYNC_ROUND_KEYS=()
if [ "$ROUNDS" -gt 0 ] && [ -n "${results[lifeboat.restore]:-}" ] && [ -n "${results[pgbackrest.restore]:-}" ]; then
  for round in $(seq 1 "$ROUNDS"); do
    tools=(lifeboat pgbackrest)
    if [ $((round % 2)) -eq 0 ]; then tools=(pgbackrest lifeboat); fi
    for tool in "${tools[@]}"; do restore_round "$tool" "$round"; done
    RESTORE_ROUND_KEYS+=("r$round")
  done
fi
if [ "$ROUNDS" -gt 0 ] && [ -n "${values[lifeboat.async.seconds]:-}" ] && [ -n "${values[pgbackrest.async.seconds]:-}" ]; then
  for round in $(seq 1 "$ROUNDS"); do
    tools=(pgbackrest lifeboat)
    if [ $((round % 2)) -eq 0 ]; then tools=(lifeboat pgbackrest); fi
    for tool in "${tools[@]}"; do
      case $tool in
        lifeboat) wal_backlog lifeboat "async.r$round" "$LIFEBOAT_ASYNC_ARCHIVE_COMMAND" "$SCRATCH/repo-lifeboat" 0 || true ;;
        pgbackrest) wal_backlog pgbackrest "async.r$round" "$PGBACKREST_ASYNC_ARCHIVE_COMMAND" "$SCRATCH/repo-pgbackrest" 0 || true ;;
      esac
    done
    ASYNC_ROUND_KEYS+=("r$round")
  done
  set_archive_command ''
fi

# --- 2b. base backups, alternating rounds ------------------------------------------------------------------
# prepare_base_round TOOL ROUND: archive_command switched to the tool (lifeboat: a fresh repository for the
# round), a segment switched and archived; untimed. Prints the repository directory.
prepare_base_round() {
  local tool=$1 round=$2 segment repo config
  case $tool in
    lifeboat)
      repo="$SCRATCH/repo-lifeboat-base-$round" config="$SCRATCH/lifeboat-base-$round.yaml"
      sed -e "s#$SCRATCH/repo-lifeboat\$#$repo#" "$LIFEBOAT_CONFIG" >"$config"
      chown postgres:postgres "$config" && chmod 600 "$config"
      as_pg "${LIFEBOAT[@]}" -c "$config" init >"$SCRATCH/logs/lifeboat-base-$round.init.log" 2>&1 || return 1
      set_archive_command "$NODE $BUILD/bin/lifeboat.js --config $config wal-push --source main %p"
      ;;
    pgbackrest)
      repo="$SCRATCH/repo-pgbackrest"
      set_archive_command "$PGBACKREST_ARCHIVE_COMMAND"
      ;;
  esac
  # A transaction first: with no WAL since the last switch (the peer's own archive check made one),
  # pg_switch_wal does nothing and names a segment that is never finished.
  sql "SELECT txid_current()" >/dev/null
  segment=$(switch_wal)
  wait_archived "$segment" 300 || return 1
  echo "$repo"
}
declare -a BASE_ROUND_KEYS=()
if [ "$BASE_ROUNDS" -gt 0 ] && [ -n "${results[lifeboat.base]:-}" ] && [ -n "${results[pgbackrest.base]:-}" ]; then
  for round in $(seq 1 "$BASE_ROUNDS"); do
    tools=(lifeboat pgbackrest)
    if [ $((round % 2)) -eq 0 ]; then tools=(pgbackrest lifeboat); fi
    for tool in "${tools[@]}"; do
      if ! repo=$(prepare_base_round "$tool" "$round"); then
        fail_note "$tool" "base round $round: could not switch archive_command to it and archive a segment"
        continue
      fi
      before=$(du_bytes "$repo")
      case $tool in
        lifeboat) timed "lifeboat.base.r$round" lifeboat "${LIFEBOAT[@]}" -c "$SCRATCH/lifeboat-base-$round.yaml" backup --json || continue ;;
        pgbackrest) timed "pgbackrest.base.r$round" pgbackrest "$PGBACKREST" --config="$PGBACKREST_CONFIG" --stanza=bench --type=full backup || continue ;;
      esac
      values[$tool.base.r$round.stored]=$(($(du_bytes "$repo") - before))
      if [ "$tool" = lifeboat ]; then rm -rf "$repo"; fi
    done
    BASE_ROUND_KEYS+=("r$round")
  done
  set_archive_command ''
fi

# --- 3. per-segment push latency, by hand, into fresh repositories ---------------------------------------
mapfile -t PUSH_NAMES < <(ls "$SCRATCH/segments")
if [ "${#PUSH_NAMES[@]}" -gt 0 ]; then
  PUSH_CONFIG="$SCRATCH/lifeboat-push.yaml"
  sed -e "s#$SCRATCH/repo-lifeboat\$#$SCRATCH/repo-lifeboat-push#" "$LIFEBOAT_CONFIG" >"$PUSH_CONFIG"
  chown postgres:postgres "$PUSH_CONFIG" && chmod 600 "$PUSH_CONFIG"
  if as_pg "${LIFEBOAT[@]}" -c "$PUSH_CONFIG" init >"$SCRATCH/logs/lifeboat-push.init.log" 2>&1; then
    values[lifeboat.push.before]=$(du_bytes "$SCRATCH/repo-lifeboat-push")
    for i in "${!PUSH_NAMES[@]}"; do
      timed "lifeboat.push.$i" lifeboat "${LIFEBOAT[@]}" -c "$PUSH_CONFIG" wal-push --source main "$SCRATCH/segments/${PUSH_NAMES[$i]}" || break
    done
    values[lifeboat.push.after]=$(du_bytes "$SCRATCH/repo-lifeboat-push")
  else
    fail_note lifeboat "init (push repository) failed: $(tail -c 600 "$SCRATCH/logs/lifeboat-push.init.log" | tr '\n' ' ')"
  fi
  PUSH_PGBACKREST_CONFIG="$SCRATCH/pgbackrest-push.conf"
  pgbackrest_config "$PUSH_PGBACKREST_CONFIG" "$SCRATCH/repo-pgbackrest-push"
  if as_pg "$PGBACKREST" --config="$PUSH_PGBACKREST_CONFIG" --stanza=bench stanza-create >"$SCRATCH/logs/pgbackrest-push.stanza.log" 2>&1; then
    values[pgbackrest.push.before]=$(du_bytes "$SCRATCH/repo-pgbackrest-push")
    for i in "${!PUSH_NAMES[@]}"; do
      timed "pgbackrest.push.$i" pgbackrest "$PGBACKREST" --config="$PUSH_PGBACKREST_CONFIG" --stanza=bench archive-push "$SCRATCH/segments/${PUSH_NAMES[$i]}" || break
    done
    values[pgbackrest.push.after]=$(du_bytes "$SCRATCH/repo-pgbackrest-push")
  else
    fail_note pgbackrest "stanza-create (push repository) failed: $(tail -c 600 "$SCRATCH/logs/pgbackrest-push.stanza.log" | tr '\n' ' ')"
  fi
fi

# --- report ------------------------------------------------------------------------------------------
field() { # field KEY wall|cpu|rss: from results, or "–"/"failed"
  local value=${results[$1]:-}
  if [ -z "$value" ]; then echo "–"; return; fi
  if [ "$value" = failed ]; then echo "failed"; return; fi
  local wall rss user sys
  read -r wall rss user sys <<<"$value"
  case $2 in
    wall) awk -v s="$wall" 'BEGIN { printf "%.2f", s }' ;;
    cpu) awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }' ;;
    rss) awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }' ;;
  esac
}
push_stat() { # push_stat TOOL wall|cpu|rss: mean (max for rss) over the hand pushes
  local tool=$1 what=$2 i n=0 acc=0 v
  for i in "${!PUSH_NAMES[@]}"; do
    v=$(field "$tool.push.$i" "$what")
    [[ "$v" =~ ^[0-9.]+$ ]] || continue
    n=$((n + 1))
    if [ "$what" = rss ]; then acc=$(awk -v a="$acc" -v b="$v" 'BEGIN { print (b > a ? b : a) }'); else acc=$(awk -v a="$acc" -v b="$v" 'BEGIN { print a + b }'); fi
  done
  if [ "$n" -eq 0 ]; then echo "–"; return; fi
  if [ "$what" = rss ]; then echo "$acc"; else awk -v a="$acc" -v n="$n" 'BEGIN { printf "%.3f", a / n }'; fi
}
delta_mib() { # delta_mib AFTER BEFORE
  if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then echo "–"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a - b) / 1048576 }'
}
base_median() { # base_median TOOL wall|cpu: median over the rounds of step 2b
  local key
  for key in "${BASE_ROUND_KEYS[@]}"; do field "$1.base.$key" "$2"; echo; done |
    grep -E '^[0-9.]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "–"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
base_rounds() { # base_rounds TOOL: each round's wall time, in order
  local key out=()
  for key in "${BASE_ROUND_KEYS[@]}"; do out+=("$(field "$1.base.$key" wall)"); done
  (IFS=,; echo "${out[*]}" | sed 's/,/, /g')
}
base_round_ratios() {
  local key out=()
  for key in "${BASE_ROUND_KEYS[@]}"; do out+=("$(ratio "$(field "lifeboat.base.$key" wall)" "$(field "pgbackrest.base.$key" wall)")"); done
  (IFS=,; echo "${out[*]}" | sed 's/,/, /g')
}
median() { # median: of the numbers on standard input, or "–"
  grep -E '^[0-9.]+$' | sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "–"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
round_wall() { # round_wall TOOL KIND ROUND: a round's wall s (restore: timed; async: the drain; recovery,
  # redo: a restore round's server log, see recovery_account)
  case $2 in
    restore) field "$1.restore.$3" wall ;;
    recovery | redo) echo "${values[$1.restore.$3.$2.seconds]:-–}" ;;
    *) echo "${values[$1.async.$3.seconds]:-–}" ;;
  esac
}
rounds_median() { # rounds_median TOOL KIND KEYS...
  local tool=$1 kind=$2 key
  shift 2
  for key in "$@"; do round_wall "$tool" "$kind" "$key"; echo; done | median
}
rounds_list() { # rounds_list TOOL|ratio KIND KEYS...: each round's wall s (or lifeboat/peer ratio), in order
  local tool=$1 kind=$2 key out=()
  shift 2
  for key in "$@"; do
    if [ "$tool" = ratio ]; then out+=("$(ratio "$(round_wall lifeboat "$kind" "$key")" "$(round_wall pgbackrest "$kind" "$key")")")
    else out+=("$(round_wall "$tool" "$kind" "$key")"); fi
  done
  (IFS=,; echo "${out[*]}" | sed 's/,/, /g')
}
per() { awk -v a="$1" -v n="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && n > 0) printf "%.3f", a / n; else print "–" }'; }
row() { echo "| $1 | $2 | $3 | $(ratio "$2" "$3") |"; }

DATE=$(date +%Y-%m-%d)
RESULTS="$ROOT/bench/results/postgres-$DATE-scale$SCALE.md"
REPORT="$SCRATCH/report.md"
LB_SEGMENTS=${values[lifeboat.wal.segments]:-0}
PB_SEGMENTS=${values[pgbackrest.wal.segments]:-0}
LB_ASYNC=${values[lifeboat.async.segments]:-0}
PB_ASYNC=${values[pgbackrest.async.segments]:-0}
{
  echo "# lifeboat PostgreSQL engine vs pg_dump -Fc and pgBackRest, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`$COMMAND_LINE\` (in $ROOT, as root; $(($(date +%s) - RUN_STARTED)) s in all)"
  echo
  echo "Machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM," \
    "kernel $(uname -r), scratch on $(df -T "$SCRATCH" | awk 'NR == 2 { print $2 }'); load average" \
    "$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine skews timings); node $(node -v)," \
    "$("$PG_BIN/postgres" --version), $("$PGBACKREST" version), lifeboat $(node -p "require('$BUILD/package.json').version") ($LIFEBOAT_SOURCE)"
  echo
  echo "Data: database \`bench\` of $(mib "$DB_BYTES") MiB (pg_database_size): \`pgbench -i -s $SCALE\`" \
    "($ACCOUNTS_EXPECTED accounts) and \`documents\`, $TEXT_ROWS rows of ~80 words from a 64-word vocabulary." \
    "WAL step: pgbench -c 2 -j 2 (TPC-B-like) until $SEGMENTS segments of 16 MiB are written, archiving paused," \
    "then the backlog archived (lifeboat: $LB_SEGMENTS segments, pgBackRest: $PB_SEGMENTS, incl. the switched one);" \
    "after the restore the same again in asynchronous mode ($LB_ASYNC / $PB_ASYNC segments)." \
    "Physical phases in the order: $ORDER."
  echo
  echo "Ratio = lifeboat / peer (above 1: lifeboat slower, hungrier or bigger). CPU = user + sys seconds; RSS = peak resident set (GNU time)."
  echo
  echo "| step | lifeboat | peer | ratio |"
  echo "| --- | --: | --: | --: |"
  echo "| **logical backup** (peer: \`pg_dump -Fc\` to a file) | | | |"
  row "backup, wall s" "$(field lifeboat.logical1 wall)" "$(field pgdump.backup wall)"
  row "backup, CPU s" "$(field lifeboat.logical1 cpu)" "$(field pgdump.backup cpu)"
  row "backup, peak RSS MiB" "$(field lifeboat.logical1 rss)" "$(field pgdump.backup rss)"
  row "stored MiB (repository du -sb / dump file)" "$(mib "${values[lifeboat.logical1.stored]:-}")" "$(mib "${values[pgdump.stored]:-}")"
  row "second backup of the unchanged DB, wall s" "$(field lifeboat.logical2 wall)" "–"
  row "second backup, CPU s" "$(field lifeboat.logical2 cpu)" "–"
  row "second backup, stored delta MiB" "$(delta_mib "${values[lifeboat.logical2.stored]:-}" "${values[lifeboat.logical1.stored]:-}")" "–"
  echo "| **physical** (peer: pgBackRest) | | | |"
  row "base backup, wall s" "$(field lifeboat.base wall)" "$(field pgbackrest.base wall)"
  row "base backup, CPU s" "$(field lifeboat.base cpu)" "$(field pgbackrest.base cpu)"
  row "base backup, peak RSS MiB" "$(field lifeboat.base rss)" "$(field pgbackrest.base rss)"
  row "base backup, stored MiB (repository growth, incl. its WAL)" "$(delta_mib "${values[lifeboat.base.after]:-}" "${values[lifeboat.base.before]:-}")" "$(delta_mib "${values[pgbackrest.base.after]:-}" "${values[pgbackrest.base.before]:-}")"
  if [ "${#BASE_ROUND_KEYS[@]}" -gt 0 ]; then
    row "base backup, median of ${#BASE_ROUND_KEYS[@]} alternating rounds (step 2b), wall s" "$(base_median lifeboat wall)" "$(base_median pgbackrest wall)"
    row "… CPU s (median)" "$(base_median lifeboat cpu)" "$(base_median pgbackrest cpu)"
    echo "| … each round, wall s | $(base_rounds lifeboat) | $(base_rounds pgbackrest) | $(base_round_ratios) |"
  fi
  row "WAL backlog archived by the archiver, wall s" "${values[lifeboat.wal.seconds]:-–}" "${values[pgbackrest.wal.seconds]:-–}"
  row "… per segment, wall s" "$(per "${values[lifeboat.wal.seconds]:-}" "$LB_SEGMENTS")" "$(per "${values[pgbackrest.wal.seconds]:-}" "$PB_SEGMENTS")"
  row "… archive_command CPU s, all segments" "${values[lifeboat.wal.cpu]:-–}" "${values[pgbackrest.wal.cpu]:-–}"
  row "… machine CPU s during the drain (all processes)" "${values[lifeboat.wal.machine]:-–}" "${values[pgbackrest.wal.machine]:-–}"
  row "… stored MiB per segment" "$(per "$(delta_mib "${values[lifeboat.wal.after]:-}" "${values[lifeboat.wal.before]:-}")" "$LB_SEGMENTS")" "$(per "$(delta_mib "${values[pgbackrest.wal.after]:-}" "${values[pgbackrest.wal.before]:-}")" "$PB_SEGMENTS")"
  row "WAL backlog, asynchronous (lifeboat pushAhead $PUSH_AHEAD / pgBackRest archive-async=y), wall s" "${values[lifeboat.async.seconds]:-–}" "${values[pgbackrest.async.seconds]:-–}"
  row "… per segment, wall s" "$(per "${values[lifeboat.async.seconds]:-}" "$LB_ASYNC")" "$(per "${values[pgbackrest.async.seconds]:-}" "$PB_ASYNC")"
  row "… machine CPU s during the drain (all processes)" "${values[lifeboat.async.machine]:-–}" "${values[pgbackrest.async.machine]:-–}"
  row "… stored MiB per segment" "$(per "$(delta_mib "${values[lifeboat.async.after]:-}" "${values[lifeboat.async.before]:-}")" "$LB_ASYNC")" "$(per "$(delta_mib "${values[pgbackrest.async.after]:-}" "${values[pgbackrest.async.before]:-}")" "$PB_ASYNC")"
  if [ "${#ASYNC_ROUND_KEYS[@]}" -gt 0 ]; then
    row "WAL backlog, asynchronous, median of ${#ASYNC_ROUND_KEYS[@]} alternating rounds (step 2c), wall s" "$(rounds_median lifeboat async "${ASYNC_ROUND_KEYS[@]}")" "$(rounds_median pgbackrest async "${ASYNC_ROUND_KEYS[@]}")"
    echo "| … each round, wall s | $(rounds_list lifeboat async "${ASYNC_ROUND_KEYS[@]}") | $(rounds_list pgbackrest async "${ASYNC_ROUND_KEYS[@]}") | $(rounds_list ratio async "${ASYNC_ROUND_KEYS[@]}") |"
  fi
  row "push by hand (${#PUSH_NAMES[@]} segments), mean wall s" "$(push_stat lifeboat wall)" "$(push_stat pgbackrest wall)"
  row "… mean CPU s" "$(push_stat lifeboat cpu)" "$(push_stat pgbackrest cpu)"
  row "… peak RSS MiB" "$(push_stat lifeboat rss)" "$(push_stat pgbackrest rss)"
  row "… stored MiB per segment" "$(per "$(delta_mib "${values[lifeboat.push.after]:-}" "${values[lifeboat.push.before]:-}")" "${#PUSH_NAMES[@]}")" "$(per "$(delta_mib "${values[pgbackrest.push.after]:-}" "${values[pgbackrest.push.before]:-}")" "${#PUSH_NAMES[@]}")"
  row "restore + recovery to end, until writable, wall s" "$(field lifeboat.restore wall)" "$(field pgbackrest.restore wall)"
  row "… of which server start to end of recovery (server log), s" "${values[lifeboat.recovery.seconds]:-–}" "${values[pgbackrest.recovery.seconds]:-–}"
  row "… WAL files fetched by restore_command" "${values[lifeboat.recovery.files]:-–}" "${values[pgbackrest.recovery.files]:-–}"
  row "restore, CPU s (the command; not the server)" "$(field lifeboat.restore cpu)" "$(field pgbackrest.restore cpu)"
  row "restore, peak RSS MiB" "$(field lifeboat.restore rss)" "$(field pgbackrest.restore rss)"
  if [ "${#RESTORE_ROUND_KEYS[@]}" -gt 0 ]; then
    row "restore + recovery to end, median of ${#RESTORE_ROUND_KEYS[@]} alternating rounds (step 2c, ~130 segments), wall s" "$(rounds_median lifeboat restore "${RESTORE_ROUND_KEYS[@]}")" "$(rounds_median pgbackrest restore "${RESTORE_ROUND_KEYS[@]}")"
    echo "| … each round, wall s | $(rounds_list lifeboat restore "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list pgbackrest restore "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list ratio restore "${RESTORE_ROUND_KEYS[@]}") |"
    echo "| … each round: server start to end of recovery (server log), s | $(rounds_list lifeboat recovery "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list pgbackrest recovery "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list ratio recovery "${RESTORE_ROUND_KEYS[@]}") |"
    echo "| … each round: of which redo (server log, \"redo done ... elapsed\"), s | $(rounds_list lifeboat redo "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list pgbackrest redo "${RESTORE_ROUND_KEYS[@]}") | $(rounds_list ratio redo "${RESTORE_ROUND_KEYS[@]}") |"
  fi
  echo
  echo "pgBackRest settings: compress-type=zst, compress-level=3, process-max=2, repo1-cipher-type=aes-256-cbc (passphrase)," \
    "start-fast=y, archive-async=n (=y in the asynchronous WAL step, with spool-path), log-level-file=info, local repo1-path; restore with --archive-mode=off." \
    "lifeboat: defaults (zstd 3, two worker threads, AES-256-GCM, local repository; baseBackup $BASE_METHOD: auto reads the data directory directly, as it runs as postgres on the server's host), repositories opened with $(key_kind "$REPO_KEY")."
  echo
  echo "Commands timed (\$BENCH_DIR = $SCRATCH; all as \`setpriv --reuid=postgres --regid=postgres --init-groups env HOME=\$BENCH_DIR/home …\`):"
  echo
  for key in pgdump.backup lifeboat.logical1 lifeboat.logical2 lifeboat.base pgbackrest.base lifeboat.restore pgbackrest.restore lifeboat.push.0 pgbackrest.push.0; do
    if [ -n "${commands[$key]:-}" ]; then echo "- $key: \`${commands[$key]//$SCRATCH/\$BENCH_DIR}\`"; fi
  done
  echo "- archive_command, lifeboat: \`${LIFEBOAT_ARCHIVE_COMMAND//$SCRATCH/\$BENCH_DIR}\`"
  echo "- archive_command, pgBackRest: \`${PGBACKREST_ARCHIVE_COMMAND//$SCRATCH/\$BENCH_DIR}\`"
  echo "- archive_command, lifeboat, asynchronous: \`${LIFEBOAT_ASYNC_ARCHIVE_COMMAND//$SCRATCH/\$BENCH_DIR}\`"
  echo "- archive_command, pgBackRest, asynchronous: \`${PGBACKREST_ASYNC_ARCHIVE_COMMAND//$SCRATCH/\$BENCH_DIR}\`"
  if [ -f "$SCRATCH/pgbackrest-restore.sh" ]; then
    echo "- pgbackrest-restore.sh:"
    echo
    echo '```sh'
    sed "s#$SCRATCH#\$BENCH_DIR#g" "$SCRATCH/pgbackrest-restore.sh"
    echo '```'
  fi
  for tool in pg_dump lifeboat pgbackrest; do
    if [ -n "${notes[$tool]:-}" ]; then
      echo
      echo "Notes, $tool:"
      echo
      printf '%s' "${notes[$tool]}" | sed "s#$SCRATCH#\$BENCH_DIR#g; s/^/- /"
    fi
  done
} >"$REPORT"

mkdir -p "$ROOT/bench/results"
cp "$REPORT" "$RESULTS"
cat "$REPORT"
log "report written to ${RESULTS#"$ROOT"/}"
exit "$FAILED"
