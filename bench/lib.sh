# bench/lib.sh — helpers shared by the bench scripts (sourced, not run).

# build_lifeboat ROOT BUILD [REF]: a private build of lifeboat in BUILD, from commit REF (git archive) or
# from the work tree's src/ (copied first, so concurrent edits or test builds of dist/ do not change it
# mid-run), with node_modules hard-linked where possible (an `npm ci` in the work tree mid-run replaces
# files without touching these). Sets LIFEBOAT_SOURCE to what was built, for the report.
build_lifeboat() {
  local root="$1" build="$2" ref="${3:-}"
  mkdir -p "$build/bin"
  if [ -n "$ref" ]; then
    LIFEBOAT_SOURCE="$(git -C "$root" rev-parse --short "$ref^{commit}") (BENCH_LIFEBOAT_REF=$ref)"
    git -C "$root" archive "$ref" src bin/lifeboat.js package.json tsconfig.json tsconfig.build.json |
      tar -x -C "$build"
    # Builds since the bundle (scripts/bundle.mjs) have it; older ones run dist/cli/main.js.
    git -C "$root" archive "$ref" scripts/bundle.mjs 2>/dev/null | tar -x -C "$build" 2>/dev/null || true
    # Builds since BLAKE3 blob ids have a native addon.
    git -C "$root" archive "$ref" native scripts/build-native.sh 2>/dev/null | tar -x -C "$build" 2>/dev/null || true
  else
    # Named before the copy: others may commit while it is taken.
    LIFEBOAT_SOURCE="work tree at $(git -C "$root" rev-parse --short HEAD)"
    if [ -n "$(git -C "$root" status --porcelain -- src)" ]; then
      LIFEBOAT_SOURCE="$LIFEBOAT_SOURCE + uncommitted changes in src/"
    fi
    cp -r "$root/src" "$root/package.json" "$root/tsconfig.json" "$root/tsconfig.build.json" "$build/"
    cp "$root/bin/lifeboat.js" "$build/bin/"
    mkdir -p "$build/scripts" && cp "$root/scripts/bundle.mjs" "$root/scripts/build-native.sh" "$build/scripts/"
    mkdir -p "$build/native/blake3"
    (cd "$root/native/blake3" && cp -r Cargo.toml Cargo.lock build.rs src "$build/native/blake3/")
  fi
  # The addon is built with the work tree's cargo target directory: only what changed is compiled.
  if [ -f "$build/scripts/build-native.sh" ]; then
    CARGO_TARGET_DIR="$root/native/blake3/target" "$build/scripts/build-native.sh"
  fi
  cp -al "$root/node_modules" "$build/node_modules" 2>/dev/null || cp -a "$root/node_modules" "$build/node_modules"
  (cd "$build" && node node_modules/typescript/bin/tsc -p tsconfig.build.json)
  if [ -f "$build/scripts/bundle.mjs" ]; then (cd "$build" && node scripts/bundle.mjs); fi
}

# repository_key FALLBACK: a new generated key from the lifeboat under test ("${LIFEBOAT[@]}"), or
# FALLBACK for builds before `key generate` (they open the repository with it as a password, via scrypt).
repository_key() { "${LIFEBOAT[@]}" key generate 2>/dev/null || printf '%s\n' "$1"; }

# key_kind KEY: how the report names the way lifeboat's repository was opened.
key_kind() { if [[ $1 == lbk1-* ]]; then echo "a generated key (no KDF)"; else echo "a password (scrypt)"; fi; }

# ratio A B: A/B to 2 decimals, or "–" when either is not a number.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "–" }'
}

# mib BYTES: in MiB to 1 decimal, or "–" when empty.
mib() { awk -v b="${1:-}" 'BEGIN { if (b == "") print "–"; else printf "%.1f", b / 1048576 }'; }

# report_commands_and_notes STEPS...: the report's list of timed commands (global `commands`, keyed
# tool.step, for the tools in $TOOLS) and each tool's notes (global `notes`).
report_commands_and_notes() {
  local tool step
  echo "Commands timed (\$BENCH_DIR = $SCRATCH):"
  echo
  for tool in $TOOLS; do
    for step in "$@"; do
      if [ -n "${commands[$tool.$step]:-}" ]; then echo "- $tool $step: \`${commands[$tool.$step]//$SCRATCH/\$BENCH_DIR}\`"; fi
    done
  done
  for tool in $TOOLS; do
    if [ -n "${notes[$tool]:-}" ]; then
      echo
      echo "Notes, $tool:"
      echo
      printf '%s' "${notes[$tool]}" | sed 's/^/- /'
    fi
  done
}

# publish_report REPORT RESULTS: copies the report into bench/results and prints it.
publish_report() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2"
  cat "$1"
  log "report written to ${2#"$ROOT"/}"
}

# need_gnu_time: installs GNU time (/usr/bin/time) when it is missing.
need_gnu_time() {
  if ! /usr/bin/time -f '%e %M' true 2>/dev/null; then
    log "installing GNU time"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq time; else sudo apt-get install -y -qq time; fi
  fi
}

# fmt STEP TOOL FIELD: one field of results[TOOL.STEP] ("wall_s rss_kib user_s sys_s", or "failed"):
# seconds | cpu | cores | rss | rate (MiB/s of $BYTES); "–" when absent.
fmt() {
  local value=${results[$2.$1]:-}
  if [ -z "$value" ]; then echo "–"; return; fi
  if [ "$value" = failed ]; then echo "failed"; return; fi
  local seconds rss user sys
  read -r seconds rss user sys <<<"$value"
  case "$3" in
    cpu) awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }' ;;
    cores) awk -v u="$user" -v s="$sys" -v w="$seconds" 'BEGIN { if (w > 0) printf "%.2f", (u + s) / w; else print "–" }' ;;
    seconds) awk -v s="$seconds" 'BEGIN { printf "%.2f", s }' ;;
    rate) awk -v s="$seconds" -v b="${BYTES:-0}" 'BEGIN { if (s > 0) printf "%.1f", b / 1048576 / s; else print "∞" }' ;;
    rss) awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }' ;;
  esac
}

# stored_table: the table of repository sizes after the first and the second backup, lifeboat against
# restic, from stored[TOOL.N] (bytes).
stored_table() {
  echo "| stored (du -sb) | lifeboat MiB | restic MiB | ratio (lifeboat/restic) |"
  echo "| --- | --: | --: | --: |"
  local n l r
  for n in 1 2; do
    l=$(mib "${stored[lifeboat.$n]:-}") r=$(mib "${stored[restic.$n]:-}")
    echo "| after the $([ "$n" = 1 ] && echo first || echo second) backup | $l | $r | $(ratio "$l" "$r") |"
  done
}

# run_tools: runs run_lifeboat and run_restic in the order $TOOLS names them.
run_tools() {
  local tool
  for tool in $TOOLS; do
    case "$tool" in
      lifeboat | restic) "run_$tool" ;;
      *) log "unknown tool $tool"; exit 2 ;;
    esac
  done
}
