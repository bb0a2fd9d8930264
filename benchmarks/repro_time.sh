#!/usr/bin/env bash
# Wall time of `make repro` on a fresh clone of this repository's HEAD.
#
#   benchmarks/repro_time.sh            # prints the machine, the commands and Markdown tables
#
# Runs, all in one throw-away clone (removed on exit):
#   1. `make repro`, first run: creates .venv from requirements.lock, composes params, runs every stage whose outputs are missing;
#   2. `make repro` again: nothing changed, so a no-op;
#   3. the pipeline outputs deleted, then `dvc repro`: DVC restores what its run cache holds, runs the rest;
#   4. the pipeline outputs deleted, then `dvc repro --force`: every stage computed again (the pipeline alone).
# The repository it lives in is only read (`git clone` of HEAD); nothing is written there.
# Set PYTHON=/path/to/python3.11 to choose the interpreter, as with make. pip's cache and index
# settings apply as usual (PIP_NO_CACHE_DIR=1 measures an install without pip's cache).
# Set REPRO_TIME_LOGS=/some/dir to keep the four runs' timestamped output there.
set -euo pipefail
export LC_ALL=C
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time not found (Debian/Ubuntu package: time)" >&2; exit 1; }

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
rev=$(git -C "$repo" rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/repro-time.XXXXXX")
keep_logs() { if [ -n "${REPRO_TIME_LOGS:-}" ]; then mkdir -p "$REPRO_TIME_LOGS" && cp "$work"/*.log "$REPRO_TIME_LOGS"/ 2>/dev/null || true; fi; }
trap 'keep_logs; rm -rf "$work"' EXIT
proj=$work/proj
# DVC keeps per-repository state in a site cache (/var/tmp/dvc by default): keep it in the temp dir too.
export DVC_SITE_CACHE_DIR=$work/dvc-site-cache
# Stage output reaches the log as it is printed, so its timestamps mark when each stage starts.
export PYTHONUNBUFFERED=1

# Prefix every line of stdin with the wall clock (seconds since the epoch).
stamp() {
  local line
  while IFS= read -r line; do printf '%s\t%s\n' "$EPOCHREALTIME" "$line"; done
}

# timed NAME COMMAND...: run COMMAND in the clone; leave NAME.start, NAME.end, NAME.log (stamped) and NAME.time.
timed() {
  local name=$1
  shift
  echo "$EPOCHREALTIME" >"$work/$name.start"
  if ! (cd "$proj" && /usr/bin/time -v -o "$work/$name.time" "$@" 2>&1) | stamp >"$work/$name.log"; then
    echo "FAILED: $* (last lines of its output follow)" >&2
    tail -n 30 "$work/$name.log" | cut -f2- >&2
    exit 1
  fi
  echo "$EPOCHREALTIME" >"$work/$name.end"
}

seconds() { awk -v a="$(cat "$work/$1.start")" -v b="$(cat "$work/$1.end")" 'BEGIN { printf "%.1f", b - a }'; }
peak_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$work/$1.time"; }
# Seconds from the start of run NAME to its first output line matching PATTERN.
until_line() {
  awk -F'\t' -v t0="$(cat "$work/$1.start")" -v pattern="$2" '$2 ~ pattern { printf "%.1f", $1 - t0; found = 1; exit } END { if (!found) print "n/a" }' "$work/$1.log"
}
# Per stage: seconds from its "Running stage" line to the next one (the last one to the end of the run).
stage_rows() {
  awk -F'\t' -v t_end="$(cat "$work/$1.end")" '
    match($2, /^Running stage \047[^\047]+\047/) {
      if (name != "") printf "| %s | %.1f s |\n", name, $1 - t0
      name = substr($2, 16, RLENGTH - 16); t0 = $1
    }
    END { if (name != "") printf "| %s | %.1f s |\n", name, t_end - t0 }' "$work/$1.log"
}
# Stages of run NAME whose DVC log line matches PATTERN (stage name in single quotes), comma-separated.
stages_with() {
  awk -F'\t' -v pattern="$2" '$2 ~ pattern { split($2, part, "\047"); list = list (list == "" ? "" : ", ") part[2] } END { print (list == "" ? "none" : list) }' "$work/$1.log"
}
what_ran() {
  echo "ran $(stages_with "$1" '^Running stage '); restored from the run cache: $(stages_with "$1" ' is cached - skipping run'); skipped as unchanged: $(stages_with "$1" "didn't change, skipping")"
}
lock_hash() { sha256sum "$proj/dvc.lock" | cut -c1-64; }
outputs=(data/prepared data/features models/model.skops)

# The figures mean little on a busy machine: record how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
git clone -q --no-hardlinks "$repo" "$proj"
git -C "$proj" checkout -q --detach "$rev"
head_lock=$(lock_hash)

timed first make repro
first_lock=$(lock_hash)
timed noop make repro
(cd "$proj" && rm -rf "${outputs[@]}")
timed restore env PATH="$proj/.venv/bin:$PATH" .venv/bin/dvc repro
(cd "$proj" && rm -rf "${outputs[@]}")
timed force env PATH="$proj/.venv/bin:$PATH" .venv/bin/dvc repro --force
force_lock=$(lock_hash)

setup=$(until_line first 'commands[.]compose')
same() { [ "$1" = "$2" ] && echo yes || echo NO; }

cat <<EOF
Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(python3 --version), $(uname -sr)
Interpreter used by make: $(cd "$proj" && .venv/bin/python --version) ($(cd "$proj" && readlink -f .venv/bin/python))
Load average (1, 5, 15 min) before the runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)
Commit: $rev ($(git -C "$repo" log -1 --format=%cs "$rev"))

| Run | Command (in a fresh clone) | Wall time | Peak RSS (largest process) |
|---|---|---:|---:|
| 1. first run | \`make repro\` | $(seconds first) s | $(peak_mb first) MB |
| ... of which venv + pinned install | (until make starts \`commands.compose\`) | $setup s | |
| 2. no-op second run | \`make repro\` | $(seconds noop) s | $(peak_mb noop) MB |
| 3. outputs deleted, then plain \`dvc repro\` | \`rm -rf ${outputs[*]} && dvc repro\` | $(seconds restore) s | $(peak_mb restore) MB |
| 4. pipeline from scratch | \`rm -rf ${outputs[*]} && dvc repro --force\` | $(seconds force) s | $(peak_mb force) MB |

What DVC did: run 1 $(what_ran first). Run 3 $(what_ran restore). Run 4 $(what_ran force).

Stages in run 4 (from each "Running stage" line to the next; includes DVC hashing and caching the outputs):

| Stage | Wall time |
|---|---:|
$(stage_rows force)

dvc.lock identical to the committed one after run 1: $(same "$head_lock" "$first_lock"); after run 4: $(same "$head_lock" "$force_lock")
EOF
