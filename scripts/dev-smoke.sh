#!/usr/bin/env bash
# Sends N messages (default 2000) through all six sockets of a running dev
# lab, half each way, reads and acknowledges them at the destinations with
# hotlinectl recv --ack, then checks that each arrived exactly once and that
# its state at the origin reached "read".
#   usage: scripts/dev-smoke.sh [DIR] [N]     (DIR defaults to hotline-dev)
# Run it from the repository root after go build -o bin/ ./cmd/... (as in
# the README's First look); HOTLINECTL names another hotlinectl.
set -euo pipefail
dir=${1:-hotline-dev}
n=${2:-2000}
ctl=${HOTLINECTL:-bin/hotlinectl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nodes=(alpha-1 alpha-2 alpha-3 bravo-1 bravo-2 bravo-3)
half=$((n / 2))
echo "sending $((half * 2)) messages, $half each way, through ${nodes[*]}"
for node in "${nodes[@]}"; do
  site=${node%-*}; to=bravo; [ "$site" = bravo ] && to=alpha
  j=$(( ${node##*-} - 1 ))
  per=$(( half / 3 + (j < half % 3 ? 1 : 0) ))
  (
    for i in $(seq 1 "$per"); do
      key="smoke-$$-$node-$i"
      id=$(echo "$key" | "$ctl" --socket "$dir/$node.sock" send --to "$to" --id "$key")
      echo "$id $key $node" >> "$work/sent-$node"
    done
  ) &
done
wait
cat "$work"/sent-* > "$work/sent"
echo "sent $(wc -l < "$work/sent") (each acknowledged by its origin site)"
# Read each site's inbox until empty; --ack marks what was printed read.
for reader in bravo-2 alpha-3; do
  while out=$("$ctl" --socket "$dir/$reader.sock" recv --ack --json --max 1000 --wait 3s) && [ -n "$out" ]; do
    echo "$out" >> "$work/recv"
  done
done
got=$(wc -l < "$work/recv")
dups=$(python3 -c 'import json,sys; ids=[json.loads(l)["id"] for l in open(sys.argv[1])]; print(len(ids)-len(set(ids)))' "$work/recv")
missing=$(python3 -c '
import json,sys
got={json.loads(l)["id"] for l in open(sys.argv[1])}
sent=[l.split()[0] for l in open(sys.argv[2])]
print(sum(1 for i in sent if i not in got))' "$work/recv" "$work/sent")
echo "received $got, duplicated $dups, missing $missing"
# Every message reaches "read" at its origin (receipts travel back).
cp "$work/sent" "$work/check"
for _ in $(seq 30); do
  : > "$work/left"
  while read -r id key node; do
    "$ctl" --socket "$dir/$node.sock" get "$id" | grep -q '^state: *read$' || echo "$id $key $node" >> "$work/left"
  done < "$work/check"
  mv "$work/left" "$work/check"
  [ -s "$work/check" ] || break
  sleep 1
done
notread=$(wc -l < "$work/check")
echo "not yet read at origin: $notread"
[ "$dups" = 0 ] && [ "$missing" = 0 ] && [ "$notread" = 0 ]
