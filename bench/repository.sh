#!/usr/bin/env bash
# bench/repository.sh — lifeboat's repository against restic on the same data, in the same run.
#
#   BENCH_SIZE_MIB=2048 bench/repository.sh
#
# A script, not a test: it asserts nothing about speed. It generates a pg_dump-like stream and a second
# version with ~5% of its bytes rewritten in 200 scattered stretches (bench/generate.ts, once per size
# and seed), then for each tool, with a fresh repository directory in the scratch dir (same disk for
# both): backs up v1 from stdin, backs up v2 from stdin, and restores v2 to /dev/null. Each step is timed
# with GNU time (wall seconds, CPU seconds, peak RSS), the repository is measured with `du -sb` after each backup,
# and restores are checked byte for byte against v2 afterwards (untimed). Prints a Markdown report and
# writes it to bench/results/repository-<date>-<size>MiB.md.
#
# Environment:
#   BENCH_SIZE_MIB  stream size in MiB (default 2048)
#   BENCH_DIR       scratch directory (default /tmp/lifeboat-bench): inputs are kept there for reuse,
#                   repositories are recreated on every run
#   BENCH_SEED      generator seed (default lifeboat-bench)
#   BENCH_VERIFY    1 (default) compares each restore with v2, untimed; 0 skips that
#   BENCH_TOOLS     tools to run, in order (default "lifeboat restic")
#   BENCH_LIFEBOAT_REF  build lifeboat from this commit (git archive) instead of the work tree's src/
#
# Fairness choices:
#   - Both read their input from a file on stdin and write restores to /dev/null; the input files are
#     in the page cache for both (24 GiB machines hold them); `sync` runs before every timed step so
#     one step's write-back is not charged to the next. Page caches are not dropped, for either tool.
#   - restic runs with --no-cache: the repository is a local directory on the same disk, where restic's
#     cache would only duplicate repository files on that disk; lifeboat keeps no cache either, so both
#     keep no state outside their repository. restic uses its default compression (auto, zstd at its
#     fastest level) and pack size (16 MiB); lifeboat its defaults (zstd level 3, 16 MiB packs).
#   - lifeboat runs through its CLI (node bin/lifeboat.js), built by tsc from a copy of src/ (work tree,
#     or BENCH_LIFEBOAT_REF) taken at the start into the scratch dir, with node_modules hard-linked
#     there, so concurrent edits, test builds of dist/ or an `npm ci` do not change it mid-run.
#   - Process start, key derivation (scrypt for both) and lock handling are in every timed step.
#   - Each run makes new repositories, and both tools key their chunkers per repository (lifeboat's
#     gear table, restic's polynomial), so chunk boundaries, and with them the second backup's
#     deduplication, vary a little from run to run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${BENCH_SIZE_MIB:-2048}"
SCRATCH="${BENCH_DIR:-/tmp/lifeboat-bench}"
SEED="${BENCH_SEED:-lifeboat-bench}"
VERIFY="${BENCH_VERIFY:-1}"
TOOLS="${BENCH_TOOLS:-lifeboat restic}"
LIFEBOAT_REF="${BENCH_LIFEBOAT_REF:-}"
TOOLS_DIR="${LIFEBOAT_TOOLS_DIR:-$HOME/.cache/lifeboat-tools}"
RESTIC="$TOOLS_DIR/bin/restic"
BUILD="$SCRATCH/build"
V1="$SCRATCH/dump-v1.sql"
V2="$SCRATCH/dump-v2.sql"
COMMAND_LINE="$(for name in BENCH_SIZE_MIB BENCH_DIR BENCH_SEED BENCH_VERIFY BENCH_TOOLS BENCH_LIFEBOAT_REF; do
  if [ -n "${!name:-}" ]; then printf '%s=%q ' "$name" "${!name}"; fi
done)bench/repository.sh${*:+ $*}"

export LIFEBOAT_PASSWORD="lifeboat-bench-password"
export RESTIC_PASSWORD="lifeboat-bench-password"

log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

[[ "$SIZE_MIB" =~ ^[0-9]+$ ]] && [ "$SIZE_MIB" -gt 0 ] || { log "BENCH_SIZE_MIB must be a positive integer"; exit 2; }
mkdir -p "$SCRATCH"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- prerequisites -----------------------------------------------------------------------------------
need_gnu_time
(cd "$ROOT" && bash -c 'source scripts/provision.sh; install_restic')

rm -rf "$BUILD"
mkdir -p "$BUILD/bench"
build_lifeboat "$ROOT" "$BUILD" "$LIFEBOAT_REF"
log "built lifeboat ($LIFEBOAT_SOURCE); building the generator into $BUILD"
cp "$ROOT/bench/generate.ts" "$BUILD/bench/"
# The generator is plain Node; package.json's "type": "module" makes the output ESM.
(cd "$BUILD" && node node_modules/typescript/bin/tsc --target ES2022 --module NodeNext --moduleResolution NodeNext \
  --types node --strict --skipLibCheck --outDir bench bench/generate.ts)

# --- inputs ------------------------------------------------------------------------------------------
STAMP="$SCRATCH/inputs.stamp"
WANT_STAMP="size=$SIZE_MIB seed=$SEED generator=$(sha256sum "$ROOT/bench/generate.ts" | cut -c1-16)"
if [ -f "$V1" ] && [ -f "$V2" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ]; then
  log "reusing inputs in $SCRATCH ($WANT_STAMP)"
else
  rm -f "$V1" "$V2" "$STAMP"
  log "generating $SIZE_MIB MiB inputs"
  node "$BUILD/bench/generate.js" "$V1" "$V2" --size-mib "$SIZE_MIB" --seed "$SEED" 2>"$SCRATCH/generate.log"
  cat "$SCRATCH/generate.log" >&2
  echo "$WANT_STAMP" > "$STAMP"
fi
BYTES=$(stat -c %s "$V1")

# --- measurement -------------------------------------------------------------------------------------
# results[tool.step] = "seconds rss_kib user_s sys_s", stored[tool.n] = bytes, notes[tool] = text
declare -A results=() stored=() notes=() commands=()
FAILED=0

# timed TOOL STEP STDIN STDOUT CMD...: runs CMD under GNU time; on failure records it and returns 1.
timed() {
  local tool=$1 step=$2 input=$3 output=$4
  shift 4
  local tfile="$SCRATCH/$tool.$step.time" errfile="$SCRATCH/$tool.$step.stderr"
  commands[$tool.$step]="$* < ${input/#$SCRATCH\//\$BENCH_DIR/} > ${output/#$SCRATCH\//\$BENCH_DIR/}"
  sync
  log "$tool: $step"
  if /usr/bin/time -f '%e %M %U %S' -o "$tfile" "$@" <"$input" >"$output" 2>"$errfile"; then
    results[$tool.$step]="$(tail -n1 "$tfile")"
    log "$tool: $step: $(tail -n1 "$tfile" | awk '{printf "%.1f s, peak RSS %.0f MiB", $1, $2/1024}')"
    return 0
  fi
  FAILED=1
  results[$tool.$step]="failed"
  notes[$tool]+="$step failed ($(grep -m1 'exit' "$tfile" || echo 'no status')): $(tail -c 600 "$errfile" | tr '\n' ' ')"$'\n'
  log "$tool: $step FAILED; stderr tail:"
  tail -n 20 "$errfile" >&2
  return 1
}

verify() {
  local tool=$1
  shift
  [ "$VERIFY" = 1 ] || return 0
  log "$tool: verifying the restore against v2 (untimed)"
  local result
  if result=$("$@" 2>"$SCRATCH/$tool.verify.stderr" | cmp - "$V2" 2>&1); then
    notes[$tool]+="restore of v2 verified byte for byte"$'\n'
  else
    FAILED=1
    notes[$tool]+="restore of v2 DIFFERS from v2: ${result:-stream failed} $(tail -c 300 "$SCRATCH/$tool.verify.stderr" | tr '\n' ' ')"$'\n'
  fi
}

run_lifeboat() {
  local repo="$SCRATCH/repo-lifeboat" config="$SCRATCH/lifeboat.yaml"
  local lifeboat=(node "$BUILD/bin/lifeboat.js" -c "$config")
  rm -rf "$repo"
  # Block style: in a YAML flow map, the { of ${LIFEBOAT_PASSWORD} (lifeboat's own interpolation) is a
  # syntax error.
  # shellcheck disable=SC2016
  printf 'repository:\n  url: %s\n  password: ${LIFEBOAT_PASSWORD}\n' "$repo" > "$config"
  "${lifeboat[@]}" init > "$SCRATCH/lifeboat.init.log" 2>&1 || {
    FAILED=1
    notes[lifeboat]+="init failed: $(tail -c 600 "$SCRATCH/lifeboat.init.log" | tr '\n' ' ')"$'\n'
    return 0
  }
  timed lifeboat backup1 "$V1" "$SCRATCH/lifeboat.backup1.out" "${lifeboat[@]}" backup-stream --name dump || return 0
  stored[lifeboat.1]=$(du -sb "$repo" | cut -f1)
  timed lifeboat backup2 "$V2" "$SCRATCH/lifeboat.backup2.out" "${lifeboat[@]}" backup-stream --name dump || return 0
  stored[lifeboat.2]=$(du -sb "$repo" | cut -f1)
  local id
  id=$("${lifeboat[@]}" snapshots --json | node -e '
    const rows = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const list = Array.isArray(rows) ? rows : rows.snapshots ?? rows.result ?? [];
    process.stdout.write(list[list.length - 1].id);')
  if [ "$id" != "$(tr -d '[:space:]' < "$SCRATCH/lifeboat.backup2.out")" ]; then
    notes[lifeboat]+="note: newest snapshot from \`snapshots --json\` ($id) is not the id backup-stream printed ($(cat "$SCRATCH/lifeboat.backup2.out"))"$'\n'
  fi
  timed lifeboat restore2 /dev/null /dev/null "${lifeboat[@]}" dump "$id" || return 0
  verify lifeboat "${lifeboat[@]}" dump "$id"
}

run_restic() {
  local repo="$SCRATCH/repo-restic"
  local restic=("$RESTIC" --no-cache -r "$repo")
  rm -rf "$repo"
  "${restic[@]}" init > "$SCRATCH/restic.init.log" 2>&1 || {
    FAILED=1
    notes[restic]+="init failed: $(tail -c 600 "$SCRATCH/restic.init.log" | tr '\n' ' ')"$'\n'
    return 0
  }
  local backup=("${restic[@]}" backup --json --host bench --stdin --stdin-filename dump.sql)
  timed restic backup1 "$V1" "$SCRATCH/restic.backup1.out" "${backup[@]}" || return 0
  stored[restic.1]=$(du -sb "$repo" | cut -f1)
  timed restic backup2 "$V2" "$SCRATCH/restic.backup2.out" "${backup[@]}" || return 0
  stored[restic.2]=$(du -sb "$repo" | cut -f1)
  # restic's own account of the second backup: bytes of new blobs before and after compression.
  notes[restic]+="$(grep '"message_type":"summary"' "$SCRATCH/restic.backup2.out" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const mib = (b) => (b / 1048576).toFixed(1);
    process.stdout.write(`second backup, as restic reports it: ${mib(s.data_added)} MiB of new data ` +
      `(${((100 * s.data_added) / s.total_bytes_processed).toFixed(1)}% of the stream), ` +
      `${mib(s.data_added_packed)} MiB stored after compression`);' 2>/dev/null || echo 'no summary line')"$'\n'
  timed restic restore2 /dev/null /dev/null "${restic[@]}" dump latest dump.sql || return 0
  verify restic "${restic[@]}" dump latest dump.sql
}

run_tools

# --- report ------------------------------------------------------------------------------------------
label_of() {
  case $1 in
    backup1) echo "first backup (v1, stdin)" ;;
    backup2) echo "second backup (v2, stdin)" ;;
    restore2) echo "restore v2 to /dev/null" ;;
  esac
}

DATE=$(date +%Y-%m-%d)
RESULTS="$ROOT/bench/results/repository-$DATE-${SIZE_MIB}MiB.md"
REPORT="$SCRATCH/report.md"
{
  echo "# lifeboat repository vs restic, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`$COMMAND_LINE\` (in $ROOT)"
  echo
  echo "Machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM," \
    "kernel $(uname -r), scratch on $(df -T "$SCRATCH" | awk 'NR == 2 { print $2 }'); load average" \
    "$LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine skews timings); node $(node -v)," \
    "$("$RESTIC" version | cut -d' ' -f1-2), lifeboat $(node -p "require('$BUILD/package.json').version") ($LIFEBOAT_SOURCE)"
  echo
  echo "Input: two pg_dump-like streams of $(mib "$BYTES") MiB (bench/generate.ts, seed \`$SEED\`):" \
    "$(sed -n 's/^generate: .*), \(binary[^;]*\);.*/\1/p' "$SCRATCH/generate.log" 2>/dev/null)"
  echo
  echo "| step | lifeboat s | restic s | lifeboat MiB/s | restic MiB/s | ratio (lifeboat/restic throughput) | peak RSS lifeboat MiB | peak RSS restic MiB |"
  echo "| --- | --: | --: | --: | --: | --: | --: | --: |"
  for step in backup1 backup2 restore2; do
    label=$(label_of $step)
    lr=$(fmt $step lifeboat rate) rr=$(fmt $step restic rate)
    echo "| $label | $(fmt $step lifeboat seconds) | $(fmt $step restic seconds) | $lr | $rr | $(ratio "$lr" "$rr") | $(fmt $step lifeboat rss) | $(fmt $step restic rss) |"
  done
  echo
  echo "CPU time (user + sys seconds; less sensitive than wall time to other load on the machine) and cores"
  echo "used (CPU time / wall time):"
  echo
  echo "| step | lifeboat CPU s | restic CPU s | ratio (lifeboat/restic) | lifeboat cores used | restic cores used |"
  echo "| --- | --: | --: | --: | --: | --: |"
  for step in backup1 backup2 restore2; do
    lc=$(fmt $step lifeboat cpu) rc=$(fmt $step restic cpu)
    echo "| $(label_of $step) | $lc | $rc | $(ratio "$lc" "$rc") | $(fmt $step lifeboat cores) | $(fmt $step restic cores) |"
  done
  echo
  stored_table
  growth() { # growth TOOL: MiB added by the second backup and its share of the first
    local a=${stored[$1.1]:-} b=${stored[$1.2]:-}
    if [ -z "$a" ] || [ -z "$b" ]; then echo "–"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f (%.1f%%)", (b - a) / 1048576, 100 * (b - a) / a }'
  }
  lg=$(growth lifeboat) rg=$(growth restic)
  echo "| added by second backup MiB (share of first backup's stored size) | $lg | $rg | $(ratio "${lg%% *}" "${rg%% *}") |"
  echo
  echo "Compression of the first backup (input / stored): lifeboat $(ratio "$BYTES" "${stored[lifeboat.1]:-}")x, restic $(ratio "$BYTES" "${stored[restic.1]:-}")x."
  echo
  report_commands_and_notes backup1 backup2 restore2
} > "$REPORT"

publish_report "$REPORT" "$RESULTS"
exit "$FAILED"
