#!/usr/bin/env bash
# Backlog test: queue N messages while every inter-site path is cut, then
# restore the paths and drain them, watching every node's memory.
#
#   usage: scripts/backlog.sh [N] [CONCURRENCY]     (defaults 1000000, 64)
#   env:   SIZE (512), BASE_PORT (7800), DIR (a new /tmp/backlog.XXXX),
#          KEEP=1 (keep DIR), DRAIN_IDLE (120s: give up after this long
#          without an arrival), SUBMIT_TIMEOUT (2m, per submit)
#
# Run it from the repository root. It builds bin/hotlined, bin/hotlinectl
# and bin/backlog (scripts/backlog/), writes a six-process lab to DIR
# (hotlinectl lab init, ports BASE_PORT.. and BASE_PORT+100..), starts it,
# takes both paths (fiber, sat) down on all six nodes, submits N messages
# of SIZE bytes to bravo through alpha-1 with CONCURRENCY submitters (each
# with its own idempotency key), brings the paths up and reads everything
# at bravo-1, acknowledging as it goes. Every node's VmRSS, RssAnon and
# RssFile (from /proc/PID/status) are sampled every second into
# DIR/rss.tsv. It prints the submit rate, the peak RSS of each node while
# queueing and while draining (anonymous and file-backed apart: bbolt maps
# its files, so the pages of the state and log it touched count as
# RssFile), the drain rate (from the last path coming back up to the last
# arrival) and how many messages were lost, duplicated or out of order.
# Exit status 1 if any was. Every wait is bounded: each hotlinectl call
# runs under timeout, and on exit the processes it started are stopped by
# PID (kill -9 after 30 s).
set -euo pipefail
n=${1:-1000000}
conc=${2:-64}
size=${SIZE:-512}
port=${BASE_PORT:-7800}
drain_idle=${DRAIN_IDLE:-120s}
submit_timeout=${SUBMIT_TIMEOUT:-2m}
dir=${DIR:-$(mktemp -d /tmp/backlog.XXXX)}
nodes=(alpha-1 alpha-2 alpha-3 bravo-1 bravo-2 bravo-3)
paths=(fiber sat)

go build -o bin/ ./cmd/hotlined ./cmd/hotlinectl
go build -o bin/backlog ./scripts/backlog
bin=$(pwd)/bin
# ctl SECONDS NODE ARGS...: hotlinectl ARGS at NODE, killed after SECONDS.
ctl() { timeout "$1" "$bin/hotlinectl" --socket "$dir/run/$2.sock" "${@:3}"; }

"$bin/hotlinectl" lab init --dir "$dir" --base-port "$port" >/dev/null
mkdir -p "$dir/run"
pids=()
sampler=
cleanup() {
  local p
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in $sampler "${pids[@]}"; do
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done # at most 30 s each
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
for x in "${nodes[@]}"; do
  (cd "$dir" && exec "$bin/hotlined" --config "$x.toml" 2>"run/$x.log") &
  pids+=($!)
done

# Up to 60 s in all for every node to answer with a leader in its site:
# each status call gets at most 2 s, and no more than what is left.
deadline=$((SECONDS + 60))
while :; do
  ok=0
  for x in "${nodes[@]}"; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || break
    { ctl "$((left < 2 ? left : 2))" "$x" status --json 2>/dev/null || true; } | grep -q '"leader": *"[a-z]' && ok=$((ok + 1))
  done
  [ "$ok" = 6 ] && break
  [ "$SECONDS" -ge "$deadline" ] && { echo "backlog: the lab did not come up within 60 s (see $dir/run/*.log)" >&2; KEEP=1; exit 1; }
  sleep 0.5
done

for x in "${nodes[@]}"; do
  for p in "${paths[@]}"; do
    ctl 10 "$x" path down "$p" >/dev/null || { echo "backlog: $x: path down $p failed or took over 10 s" >&2; exit 1; }
  done
done
echo "backlog: every path down on every node; lab in $dir"

# Every node's memory, every second, until killed.
(
  echo -e "t_ms\tnode\tvmrss_kib\trssanon_kib\trssfile_kib"
  while :; do
    t=$(date +%s%3N)
    for k in "${!nodes[@]}"; do
      awk -v t="$t" -v node="${nodes[$k]}" '
        /^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2}
        END {if (r != "") printf "%s\t%s\t%s\t%s\t%s\n", t, node, r, a, f}' "/proc/${pids[$k]}/status" 2>/dev/null || true
    done
    sleep 1
  done
) >"$dir/rss.tsv" &
sampler=$!

t_submit=$(date +%s%3N)
submit=$("$bin/backlog" submit --socket "$dir/run/alpha-1.sock" --to bravo --n "$n" --size "$size" \
  --concurrency "$conc" --timeout "$submit_timeout" --state "$dir/state" 2>"$dir/submit.log")
echo "backlog: submit: $submit"
# status exits 1 while alarms are raised (the paths are down): read it anyway
queued=$({ ctl 10 alpha-1 status --json 2>/dev/null || true; } | python3 -c 'import json,sys; print(sum(q["queued"] for q in json.load(sys.stdin)["outbound"]))')
echo "backlog: queued at alpha: $queued"
du -sh "$dir"/data/* | tr '\n' ' '; echo

for x in "${nodes[@]}"; do
  for p in "${paths[@]}"; do
    ctl 10 "$x" path up "$p" >/dev/null || { echo "backlog: $x: path up $p failed or took over 10 s" >&2; exit 1; }
  done
done
# The drain window (and the RSS "while draining" phase) starts once the
# last of the twelve paths is up, not at the first: messages may already
# move during the last few calls, so the drain time can be a little short.
t_up=$(date +%s%3N)
echo "backlog: paths up; draining at bravo-1"
status=0
drain=$("$bin/backlog" drain --socket "$dir/run/bravo-1.sock" --state "$dir/state" --since "$t_up" \
  --timeout "$drain_idle" 2>"$dir/drain.log") || status=1
t_end=$(date +%s%3N)
echo "backlog: drain: $drain"
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=

echo "peak RSS in MiB (while queueing t<$(( (t_up - t_submit) / 1000 ))s | while draining):"
awk -v up="$t_up" -v end="$t_end" -F'\t' '
  NR > 1 {
    ph = ($1 < up) ? 0 : 1
    k = $2 SUBSEP ph
    if ($3 > r[k]) r[k] = $3; if ($4 > a[k]) a[k] = $4; if ($5 > f[k]) f[k] = $5
    seen[$2] = 1
  }
  END {
    printf "%-8s %8s %8s %8s | %8s %8s %8s\n", "node", "rss", "anon", "file", "rss", "anon", "file"
    n = split("alpha-1 alpha-2 alpha-3 bravo-1 bravo-2 bravo-3", ns, " ")
    for (i = 1; i <= n; i++) {
      x = ns[i]; if (!(x in seen)) continue
      printf "%-8s %8.1f %8.1f %8.1f | %8.1f %8.1f %8.1f\n", x,
        r[x SUBSEP 0]/1024, a[x SUBSEP 0]/1024, f[x SUBSEP 0]/1024,
        r[x SUBSEP 1]/1024, a[x SUBSEP 1]/1024, f[x SUBSEP 1]/1024
    }
  }' "$dir/rss.tsv"
du -sh "$dir"/data/* | tr '\n' ' '; echo
exit $status
