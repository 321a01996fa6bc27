#!/usr/bin/env bash
# Runs the same load through hotline's six-process lab and then through the
# NATS JetStream peer (../shared/peers/nats/run.sh beside the repository,
# run in place), one after the other, and prints one table: throughput,
# submit and end-to-end latency, lost and duplicated messages, device write
# I/Os, KiB written and flushes per message (/proc/diskstats of the disk
# holding each system's data), CPU seconds per message, and the throughput
# ratio hotline/NATS.
#
#   usage: scripts/bench-vs-nats.sh [-n N] [-size BYTES] [-concurrency C]
#            [-rate R] [--warmup N] [--base-port P] [--bin DIR]
#            [--peer DIR] [--keep] [--hotline-only]
#
# Everything listens on loopback only: the lab on P, P+100 (default 7700),
# the peer on 4221-4223, 5221-5223, 6221-6223, 6321-6323, 7421-7423. Every
# wait is bounded; the processes it started are stopped by PID on exit.
set -euo pipefail

n=2000 size=512 conc=32 rate=0 warmup=500 base_port=7700
bin="" peer="" keep=0 hotline_only=0
die() { echo "bench-vs-nats: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
  -n | --n) need "$@"; n=$2; shift 2 ;;
  -size | --size) need "$@"; size=$2; shift 2 ;;
  -concurrency | --concurrency) need "$@"; conc=$2; shift 2 ;;
  -rate | --rate) need "$@"; rate=$2; shift 2 ;;
  --warmup) need "$@"; warmup=$2; shift 2 ;;
  --base-port) need "$@"; base_port=$2; shift 2 ;;
  --bin) need "$@"; bin=$2; shift 2 ;;
  --peer) need "$@"; peer=$2; shift 2 ;;
  --keep) keep=1; shift ;;
  --hotline-only) hotline_only=1; shift ;;
  -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1 (see --help)" ;;
  esac
done
for v in n size conc warmup base_port rate; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "-${v/conc/concurrency} ${!v}: want a whole number"
done
[ "$n" -ge 1 ] && [ "$conc" -ge 1 ] || die "-n and -concurrency must be at least 1"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

# The peer lives beside the repository (../shared/peers/nats); from a git
# worktree elsewhere, beside the main checkout.
if [ "$hotline_only" = 0 ] && [ -z "$peer" ]; then
  peer=$root/../shared/peers/nats
  if [ ! -x "$peer/run.sh" ] && common=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
    [ -x "$(dirname "$common")/../shared/peers/nats/run.sh" ] && peer=$(dirname "$common")/../shared/peers/nats
  fi
fi
if [ "$hotline_only" = 0 ]; then
  [ -x "$peer/run.sh" ] || die "no NATS peer at $peer/run.sh (expected ../shared/peers/nats beside the repository; give --peer DIR, or --hotline-only)"
  peer=$(cd "$peer" && pwd)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-nats.XXXXXX")
lab_pids=() peer_pid="" fg_pid=""
# fg CMD...: runs CMD in the background and waits for it, so that a signal
# to this script is handled at once (cleanup stops CMD too).
fg() {
  "$@" &
  fg_pid=$!
  local rc=0
  wait "$fg_pid" || rc=$?
  fg_pid=""
  return $rc
}
cleanup() {
  local p
  [ -n "$fg_pid" ] && kill "$fg_pid" 2>/dev/null
  for p in "${lab_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$peer_pid" ] && kill -0 "$peer_pid" 2>/dev/null; then
    for p in $(pgrep -P "$peer_pid" || true); do kill "$p" 2>/dev/null || true; done
    kill "$peer_pid" 2>/dev/null || true
  fi
  for p in "${lab_pids[@]}" $peer_pid; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "$keep" = 1 ]; then echo "bench-vs-nats: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$bin" ]; then
  echo "bench-vs-nats: go build into $work/bin" >&2
  fg go build -C "$root" -o "$work/bin/" ./cmd/hotlined ./cmd/hotlinectl
  bin=$work/bin
fi
[ -d "$bin" ] || die "--bin $bin: no such directory"
bin=$(cd "$bin" && pwd)
ctl=$bin/hotlinectl
[ -x "$ctl" ] && [ -x "$bin/hotlined" ] || die "no hotlined and hotlinectl in $bin"

# disk PATH: the whole disk (as /proc/diskstats names it) holding PATH, or
# nothing when it is on no block device (tmpfs, overlay without one).
disk() {
  local p=$1 mm src sys
  while [ ! -e "$p" ]; do p=$(dirname "$p"); done
  mm=$(stat -c '%Hd:%Ld' "$p")
  if [ "${mm%%:*}" = 0 ]; then
    src=$(findmnt -no SOURCE --target "$p" 2>/dev/null | head -1)
    [ -b "$src" ] || return 0
    mm=$(stat -L -c '%Hr:%Lr' "$src")
  fi
  sys=/sys/dev/block/$mm
  [ -e "$sys" ] || return 0
  sys=$(readlink -f "$sys")
  [ -e "$sys/partition" ] && sys=$(dirname "$sys")
  basename "$sys"
}
# diskstat DEV: writes completed, sectors written, flushes (fields 8, 10, 19).
diskstat() {
  local l f
  while read -r l; do
    read -r -a f <<<"$l"
    if [ "${f[2]}" = "$1" ]; then echo "${f[7]} ${f[9]} ${f[18]:--}"; return; fi
  done </proc/diskstats
  echo "- - -"
}
# cputicks PID...: their utime+stime, in clock ticks (processes gone count 0).
cputicks() {
  local t=0 p f
  for p in "$@"; do
    read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

# ---- hotline: the six-process lab ----
lab=$work/lab
hdisk=$(disk "$lab")
"$ctl" lab init --dir "$lab" --base-port "$base_port" >/dev/null
mkdir -p "$lab/run"
nodes=(alpha-1 alpha-2 alpha-3 bravo-1 bravo-2 bravo-3)
for x in "${nodes[@]}"; do
  (cd "$lab" && exec "$bin/hotlined" --config "$x.toml" 2>"run/$x.log") &
  lab_pids+=($!)
done
echo "bench-vs-nats: lab in $lab (ports $base_port, $((base_port + 100))), pids ${lab_pids[*]}" >&2
# At most 60 s in all: each status call gets at most 2 s, and no more
# than what is left before the deadline.
ready=0 deadline=$((SECONDS + 60))
while :; do
  for k in "${!nodes[@]}"; do
    kill -0 "${lab_pids[k]}" 2>/dev/null || { tail -20 "$lab/run/${nodes[k]}.log" >&2; die "${nodes[k]} exited while starting"; }
  done
  ready=0
  for x in "${nodes[@]}"; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || break
    st=$(timeout "$((left < 2 ? left : 2))" "$ctl" --socket "$lab/run/$x.sock" status --json 2>/dev/null) || break
    [ "$(jq -r '.leader // ""' <<<"$st")" != "" ] || break
    ready=$((ready + 1))
  done
  [ "$ready" = 6 ] || [ "$SECONDS" -ge "$deadline" ] && break
  sleep 0.5
done
[ "$ready" = 6 ] || die "the lab was not ready (every node with a leader and no alarm) within 60 s; logs in $lab/run (use --keep)"

bench=("$ctl" --socket "$lab/run/alpha-1.sock" bench --recv-socket "$lab/run/bravo-1.sock" --to bravo --size "$size" --concurrency "$conc" --timeout 60s)
[ "$rate" != 0 ] && bench+=(--rate "$rate")
if [ "$warmup" -gt 0 ]; then
  echo "bench-vs-nats: warm-up, $warmup messages" >&2
  fg timeout 300 "${bench[@]}" --n "$warmup" >/dev/null 2>"$work/warmup.err" || { cat "$work/warmup.err" >&2; die "the warm-up bench failed"; }
fi
echo "bench-vs-nats: hotline, $n messages of $size bytes, $conc submitters, rate ${rate/#0/unlimited}" >&2
# hotline's state file is not synced on each commit (queue/unsynced.go):
# sync before and after the run, so that the figures hold every byte the
# run dirtied (and none the warm-up did).
sync
hd0=$(diskstat "$hdisk") hc0=$(cputicks "${lab_pids[@]}")
hrc=0
fg timeout 900 "${bench[@]}" --n "$n" --json >"$work/hotline.json" 2>"$work/hotline.err" || hrc=$?
hc1=$(cputicks "${lab_pids[@]}")
sync
hd1=$(diskstat "$hdisk")
[ -s "$work/hotline.json" ] || { cat "$work/hotline.err" >&2; die "hotlinectl bench printed no result (exit $hrc)"; }
[ "$hrc" = 0 ] || echo "bench-vs-nats: hotlinectl bench exited $hrc: $(tail -1 "$work/hotline.err")" >&2
for p in "${lab_pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${lab_pids[@]}"; do
  for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done # at most 30 s each
  kill -9 "$p" 2>/dev/null || true
done
lab_pids=()

# ---- NATS JetStream: the peer, run in place ----
nrc=0 nd0="" nd1="" nc0="" nc1="" ndisk=""
if [ "$hotline_only" = 0 ]; then
  nwork=${NATS_WORK:-${TMPDIR:-/tmp}/nats-peer}
  ndisk=$(disk "$nwork")
  args=(-n "$n" -size "$size" -concurrency "$conc")
  [ "$rate" != 0 ] && args+=(-rate "$rate")
  echo "bench-vs-nats: NATS peer: $peer/run.sh ${args[*]} (the first run installs nats-server)" >&2
  "$peer/run.sh" "${args[@]}" >"$work/nats.out" 2>"$work/nats.err" &
  peer_pid=$!
  # Sample the disk and the servers' CPU while the peer's client (e2e)
  # runs: the first sample once it has started, the last one while it
  # still runs (the servers are stopped as soon as it exits). Every 0.2 s,
  # not faster, so that the sampling takes little CPU from NATS: the
  # window can start up to 0.2 s after the client and end up to 0.2 s
  # before it exits.
  deadline=$((SECONDS + 1800)) e2e="" servers=()
  while [ $SECONDS -lt $deadline ] && kill -0 "$peer_pid" 2>/dev/null; do
    if [ -z "$e2e" ]; then
      if e2e=$(pgrep -P "$peer_pid" -x e2e); then
        mapfile -t servers < <(pgrep -P "$peer_pid" -x nats-server)
        nd0=$(diskstat "$ndisk") nc0=$(cputicks "${servers[@]}")
      else
        e2e=""
        sleep 0.2
        continue
      fi
    fi
    kill -0 "$e2e" 2>/dev/null || break
    d=$(diskstat "$ndisk") c=$(cputicks "${servers[@]}")
    kill -0 "$e2e" 2>/dev/null || break # the servers may be stopping: keep the sample before
    nd1=$d nc1=$c
    sleep 0.2
  done
  if [ $SECONDS -ge $deadline ]; then die "the NATS peer did not finish within 30 min (output in $work, use --keep)"; fi
  for _ in $(seq 600); do kill -0 "$peer_pid" 2>/dev/null || break; sleep 0.1; done # its servers stop: at most 60 s
  wait "$peer_pid" || nrc=$?
  peer_pid=""
  grep -q '^{' "$work/nats.out" || { tail -20 "$work/nats.err" >&2; die "the NATS peer printed no result (exit $nrc)"; }
  [ -n "$nd1" ] || echo "bench-vs-nats: the peer's client was not seen running: no disk and CPU figures for NATS" >&2
fi

# ---- the table ----
WARMUP=$warmup HDISK=$hdisk HD0=$hd0 HD1=$hd1 HC0=$hc0 HC1=$hc1 NDISK=$ndisk ND0=$nd0 ND1=$nd1 NC0=$nc0 NC1=$nc1 HZ=$hz \
  python3 - "$work/hotline.json" "$work/nats.out" "$hotline_only" <<'PY'
import json, os, sys
e = os.environ
h = json.load(open(sys.argv[1]))
rows = [("hotline (six-process lab)", h, "H")]
if sys.argv[3] == "0":
    line = [l for l in open(sys.argv[2]) if l.startswith("{")][-1]
    rows.append(("NATS JetStream (peer)", json.loads(line), "N"))

def per(msgs, k):
    d0, d1 = e.get(k + "D0", "").split(), e.get(k + "D1", "").split()
    if len(d0) != 3 or len(d1) != 3 or not msgs:
        return ["-"] * 3
    out = []
    for i, scale in ((0, 1), (1, 0.5), (2, 1)):  # sectors are 512 B: KiB = sectors / 2
        if d0[i] == "-" or d1[i] == "-":
            out.append("-")
        else:
            out.append("%.2f" % ((int(d1[i]) - int(d0[i])) * scale / msgs))
    return out

def cpu(msgs, k):
    c0, c1 = e.get(k + "C0", ""), e.get(k + "C1", "")
    if not c0 or not c1 or not msgs:
        return "-"
    return "%.6f" % ((int(c1) - int(c0)) / int(e["HZ"]) / msgs)

head = ["system", "msgs/s", "submit p50/p99 ms", "e2e p50/p99 ms", "lost", "dup",
        "write I/Os/msg", "KiB/msg", "flushes/msg", "CPU s/msg (bench nodes)", "CPU s/msg (all 6 procs)"]
table = [head]
for name, r, k in rows:
    msgs = r.get("delivered", 0)
    bench_cpu = "%.6f" % r["cpu_s_per_msg"] if r.get("cpu_s_per_msg") is not None else ("not measured" if k == "H" else "-")
    table.append([name, "%.0f" % r["msgs_per_sec"],
                  "%.1f / %.1f" % (r["submit_p50_ms"], r["submit_p99_ms"]),
                  "%.1f / %.1f" % (r["e2e_p50_ms"], r["e2e_p99_ms"]),
                  str(r["lost"]), str(r["duplicated"])] + per(msgs, k) + [bench_cpu, cpu(msgs, k)])
print("| " + " | ".join(table[0]) + " |")
print("|" + "---|" * len(head))
for row in table[1:]:
    print("| " + " | ".join(row) + " |")
print()
print("n=%d size=%d concurrency=%d rate=%s" % (h["n"], h["size"], h["concurrency"], h.get("rate") or "unlimited"))
print("disk: hotline %s, NATS %s (/proc/diskstats fields 8, 10, 19 over the measured run, per delivered message)"
      % (e.get("HDISK") or "none", (e.get("NDISK") or "none") if len(rows) > 1 else "-"))
if h.get("nodes"):
    print("hotline bench nodes: " + ", ".join(
        "%s %s" % (n["node"], ("%.2f s" % n["cpu_s"]) if "cpu_s" in n else "not read: " + n.get("error", "?"))
        for n in h["nodes"]))
if len(rows) > 1:
    nr = rows[1][1]["msgs_per_sec"]
    print("throughput hotline/NATS: %s" % ("%.2f×" % (h["msgs_per_sec"] / nr) if nr else "-"))
    if int(e.get("WARMUP") or 0):
        print("warm-up: hotline %d messages before its measured run, NATS none: NATS's run includes its cold start"
              " (--warmup 0 for a symmetric comparison)" % int(e["WARMUP"]))
    else:
        print("warm-up: none for either system (--warmup 0)")
PY
[ "$hrc" = 0 ] && [ "$nrc" = 0 ] || exit 1
