#!/usr/bin/env bash
# bench/files.sh — lifeboat's files engine against restic on the same tree, in the same run.
#
#   bench/files.sh                      # BENCH_FILES=100000 small files + BENCH_LARGE=3 files of 64 MiB
#
# A script, not a test: it asserts nothing about speed. It makes a tree of many small text files (~2 KiB
# each, in directories of 1000) and a few large random files, then for each tool, with a fresh
# repository in the scratch dir: backs the tree up, rewrites 1% of the small files (scattered), backs it
# up again, and restores the second backup into a fresh directory. Each step is timed with GNU time
# (wall seconds, CPU seconds, peak RSS); repositories are measured with `du -sb`; each restore is
# compared with the tree by `diff -r` afterwards (untimed). Prints a Markdown report and writes it to
# bench/results/files-<date>-<files>.md.
#
# Environment:
#   BENCH_FILES        small files (default 100000; a multiple of 1000)
#   BENCH_LARGE        large files of 64 MiB (default 3)
#   BENCH_DIR          scratch directory (default /tmp/lifeboat-bench-files): the tree is kept there for
#                      reuse, repositories are recreated on every run
#   BENCH_RESTORE_DIR  where restores go (default /dev/shm/lifeboat-bench-files when /dev/shm is a
#                      tmpfs with room, else $BENCH_DIR/restores)
#   BENCH_TOOLS        tools to run, in order (default "lifeboat restic")
#   BENCH_LIFEBOAT_REF build lifeboat from this commit instead of the work tree's src/
#
# Fairness choices:
#   - Both read the same tree from the page cache (`sync` before every timed step, caches not dropped).
#   - restic runs with --no-cache and its defaults otherwise; lifeboat with its defaults. restic's second
#     backup has the first as its parent: it skips files whose size, mtime, ctime and inode did not
#     change without reading them. lifeboat keeps no such cache: it reads every file every time (its
#     repository deduplicates them). The second backup measures that difference as it is.
#   - Restores go to a tmpfs by default: on ext4, creating 100k inodes right after deleting 100k others
#     (the previous run's restore) made inode allocation skip "recently deleted" inodes for minutes and
#     cost either tool 5-10x, depending on which block groups it landed in.
#   - lifeboat restores the second backup's recovery point into drills.targets.tree (`restore latest
#     --target tree --yes`); restic restores `latest` with --target. Both write modes and mtimes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FILES="${BENCH_FILES:-100000}"
LARGE="${BENCH_LARGE:-3}"
SCRATCH="${BENCH_DIR:-/tmp/lifeboat-bench-files}"
TOOLS="${BENCH_TOOLS:-lifeboat restic}"
LIFEBOAT_REF="${BENCH_LIFEBOAT_REF:-}"
TOOLS_DIR="${LIFEBOAT_TOOLS_DIR:-$HOME/.cache/lifeboat-tools}"
RESTIC="$TOOLS_DIR/bin/restic"
BUILD="$SCRATCH/build"
TREE="$SCRATCH/tree"
COMMAND_LINE="$(for name in BENCH_FILES BENCH_LARGE BENCH_DIR BENCH_RESTORE_DIR BENCH_TOOLS BENCH_LIFEBOAT_REF; do
  if [ -n "${!name:-}" ]; then printf '%s=%q ' "$name" "${!name}"; fi
done)bench/files.sh"

export LIFEBOAT_PASSWORD="lifeboat-bench-password"
export RESTIC_PASSWORD="lifeboat-bench-password"

log() { printf '[bench] %s\n' "$*" >&2; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

[[ "$FILES" =~ ^[0-9]+$ ]] && [ "$FILES" -ge 1000 ] && [ $((FILES % 1000)) -eq 0 ] ||
  { log "BENCH_FILES must be a positive multiple of 1000"; exit 2; }
[[ "$LARGE" =~ ^[0-9]+$ ]] || { log "BENCH_LARGE must be a number"; exit 2; }
mkdir -p "$SCRATCH"
if [ -z "${BENCH_RESTORE_DIR:-}" ]; then
  if [ "$(df --output=fstype /dev/shm 2>/dev/null | tail -n1)" = tmpfs ] &&
    [ "$(df --output=avail -B1M /dev/shm | tail -n1)" -gt $((FILES / 100 + LARGE * 64 * 3 + 512)) ]; then
    RESTORES=/dev/shm/lifeboat-bench-files
  else
    RESTORES="$SCRATCH/restores"
  fi
else
  RESTORES="$BENCH_RESTORE_DIR"
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- prerequisites -----------------------------------------------------------------------------------
need_gnu_time
(cd "$ROOT" && bash -c 'source scripts/provision.sh; install_restic')
rm -rf "$BUILD"
build_lifeboat "$ROOT" "$BUILD" "$LIFEBOAT_REF"
log "built lifeboat ($LIFEBOAT_SOURCE)"

# --- the tree ----------------------------------------------------------------------------------------
# Content is a function of the file's place (so a run can put back the files the previous run rewrote):
# 600 bytes of hash output in base64, then 40 lines naming the file.
# tree.js MODE: "make" writes the whole tree, "reset" rewrites the 1% with their first content, "touch"
# rewrites them with new content. The 1%: every 100th file, spread over all directories.
cat > "$SCRATCH/tree.js" <<'EOF'
const { createHash, randomBytes } = require('node:crypto');
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const [mode, tree, files, large] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const directories = files / 1000;
const pathOf = (d, f) => join(tree, `d${String(d).padStart(3, '0')}`, `f${f}.txt`);
const first = (d, f) => {
  let bytes = Buffer.alloc(0);
  for (let i = 0; bytes.length < 450; i++)
    bytes = Buffer.concat([bytes, createHash('sha256').update(`${d}/${f}/${i}`).digest()]);
  return `${bytes.toString('base64')}\n${`line ${d}/${f}\n`.repeat(40)}`;
};
const touched = (index) => [(index * 37) % directories, (index * 7919) % 1000];
if (mode === 'make') {
  for (let d = 0; d < directories; d++) {
    mkdirSync(join(tree, `d${String(d).padStart(3, '0')}`), { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(pathOf(d, f), first(d, f));
  }
  for (let l = 0; l < large; l++) writeFileSync(join(tree, `large-${l}.bin`), randomBytes(64 * 1024 * 1024));
} else {
  for (let index = 0; index < files / 100; index++) {
    const [d, f] = touched(index);
    writeFileSync(pathOf(d, f), mode === 'touch' ? `touched ${index} ${randomBytes(400).toString('hex')}\n` : first(d, f));
  }
}
EOF
STAMP="$SCRATCH/tree.stamp"
WANT_STAMP="files=$FILES large=$LARGE generator=$(sha256sum "$SCRATCH/tree.js" | cut -c1-16)"
if [ -d "$TREE" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ]; then
  log "reusing the tree in $TREE ($WANT_STAMP); putting back the 1% a previous run rewrote"
  node "$SCRATCH/tree.js" reset "$TREE" "$FILES" "$LARGE"
else
  rm -rf "$TREE" "$STAMP"
  log "making $FILES small files and $LARGE large ones in $TREE"
  node "$SCRATCH/tree.js" make "$TREE" "$FILES" "$LARGE"
  echo "$WANT_STAMP" > "$STAMP"
fi
TREE_BYTES=$(du -sb --apparent-size "$TREE" | cut -f1)

# --- measurement -------------------------------------------------------------------------------------
declare -A results=() stored=() notes=() commands=()
FAILED=0

# timed TOOL STEP CMD...: runs CMD under GNU time; on failure records it and returns 1.
timed() {
  local tool=$1 step=$2
  shift 2
  local tfile="$SCRATCH/$tool.$step.time" errfile="$SCRATCH/$tool.$step.stderr"
  commands[$tool.$step]="$*"
  sync
  log "$tool: $step"
  if /usr/bin/time -f '%e %M %U %S' -o "$tfile" "$@" >"$SCRATCH/$tool.$step.out" 2>"$errfile"; then
    results[$tool.$step]="$(tail -n1 "$tfile")"
    log "$tool: $step: $(tail -n1 "$tfile" | awk '{printf "%.1f s, peak RSS %.0f MiB", $1, $2/1024}')"
    return 0
  fi
  FAILED=1
  results[$tool.$step]="failed"
  notes[$tool]+="$step failed: $(tail -c 600 "$errfile" | tr '\n' ' ')"$'\n'
  log "$tool: $step FAILED; stderr tail:"
  tail -n 20 "$errfile" >&2
  return 1
}

# compare TOOL DIR: the restored copy of the tree against the tree (content, modes, symlinks), untimed.
compare() {
  local tool=$1 copy=$2
  if diff -r --no-dereference "$TREE" "$copy" > "$SCRATCH/$tool.diff" 2>&1; then
    notes[$tool]+="restore compared with the tree by diff -r: identical"$'\n'
  else
    FAILED=1
    notes[$tool]+="restore DIFFERS from the tree: $(head -c 400 "$SCRATCH/$tool.diff" | tr '\n' ' ')"$'\n'
  fi
}

run_lifeboat() {
  local repo="$SCRATCH/repo-lifeboat" config="$SCRATCH/lifeboat.yaml" target="$RESTORES/lifeboat"
  local lifeboat=(node "$BUILD/bin/lifeboat.js" -c "$config")
  rm -rf "$repo" "$target"
  # shellcheck disable=SC2016
  printf 'repository:\n  url: %s\n  password: ${LIFEBOAT_PASSWORD}\nsources:\n  tree:\n    engine: files\n    paths: [%s]\ndrills:\n  targets:\n    tree:\n      directory: %s\n' \
    "$repo" "$TREE" "$target" > "$config"
  "${lifeboat[@]}" init > "$SCRATCH/lifeboat.init.log" 2>&1 || {
    FAILED=1
    notes[lifeboat]+="init failed: $(tail -c 600 "$SCRATCH/lifeboat.init.log" | tr '\n' ' ')"$'\n'
    return 0
  }
  timed lifeboat backup1 "${lifeboat[@]}" backup --json || return 0
  stored[lifeboat.1]=$(du -sb "$repo" | cut -f1)
  node "$SCRATCH/tree.js" touch "$TREE" "$FILES" "$LARGE"
  timed lifeboat backup2 "${lifeboat[@]}" backup --json || return 0
  stored[lifeboat.2]=$(du -sb "$repo" | cut -f1)
  timed lifeboat restore "${lifeboat[@]}" restore latest --source tree --target tree --yes --json || return 0
  compare lifeboat "$target$TREE"
  node "$SCRATCH/tree.js" reset "$TREE" "$FILES" "$LARGE"
  rm -rf "$target"
}

run_restic() {
  local repo="$SCRATCH/repo-restic" target="$RESTORES/restic"
  local restic=("$RESTIC" --no-cache -r "$repo")
  rm -rf "$repo" "$target"
  "${restic[@]}" init > "$SCRATCH/restic.init.log" 2>&1 || {
    FAILED=1
    notes[restic]+="init failed: $(tail -c 600 "$SCRATCH/restic.init.log" | tr '\n' ' ')"$'\n'
    return 0
  }
  timed restic backup1 "${restic[@]}" backup --json --host bench "$TREE" || return 0
  stored[restic.1]=$(du -sb "$repo" | cut -f1)
  node "$SCRATCH/tree.js" touch "$TREE" "$FILES" "$LARGE"
  timed restic backup2 "${restic[@]}" backup --json --host bench "$TREE" || return 0
  stored[restic.2]=$(du -sb "$repo" | cut -f1)
  timed restic restore "${restic[@]}" restore latest --target "$target" || return 0
  compare restic "$target$TREE"
  node "$SCRATCH/tree.js" reset "$TREE" "$FILES" "$LARGE"
  rm -rf "$target"
}

mkdir -p "$RESTORES"
run_tools

# --- report ------------------------------------------------------------------------------------------
label_of() {
  case $1 in
    backup1) echo "first backup" ;;
    backup2) echo "second backup (1% of the small files rewritten)" ;;
    restore) echo "restore of the second backup" ;;
  esac
}

RESULTS="$ROOT/bench/results/files-$(date +%Y-%m-%d)-${FILES}.md"
REPORT="$SCRATCH/report.md"
{
  echo "# lifeboat files engine vs restic, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Command: \`$COMMAND_LINE\` (in $ROOT)"
  echo
  echo "Machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM," \
    "kernel $(uname -r); tree on $(df -T "$SCRATCH" | awk 'NR == 2 { print $2 }'), restores on $(df -T "$RESTORES" | awk 'NR == 2 { print $2 }');" \
    "load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; node $(node -v)," \
    "$("$RESTIC" version | cut -d' ' -f1-2), lifeboat $(node -p "require('$BUILD/package.json').version") ($LIFEBOAT_SOURCE)"
  echo
  echo "Tree: $FILES small files (~2 KiB of text each, 1000 per directory) and $LARGE random files of 64 MiB;" \
    "$(mib "$TREE_BYTES") MiB in all."
  echo
  echo "Ratio = lifeboat / restic (above 1: lifeboat slower, hungrier or bigger)."
  echo
  echo "| step | lifeboat s | restic s | ratio | lifeboat CPU s | restic CPU s | peak RSS lifeboat MiB | peak RSS restic MiB |"
  echo "| --- | --: | --: | --: | --: | --: | --: | --: |"
  for step in backup1 backup2 restore; do
    ls=$(fmt $step lifeboat seconds) rs=$(fmt $step restic seconds)
    echo "| $(label_of $step) | $ls | $rs | $(ratio "$ls" "$rs") | $(fmt $step lifeboat cpu) | $(fmt $step restic cpu) | $(fmt $step lifeboat rss) | $(fmt $step restic rss) |"
  done
  echo
  stored_table
  echo
  report_commands_and_notes backup1 backup2 restore
} > "$REPORT"

publish_report "$REPORT" "$RESULTS"
exit "$FAILED"
