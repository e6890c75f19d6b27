#!/bin/sh
# bench/scaling.sh — 1 CPU vs 2 CPUs for the encrypted engine (issue 8,
# docs/engine.md "1 vs 2 CPUs"): alternated rounds of
#   taskset -c 0   hetee-bench infer --model M --batch B --images N --threads 1 --json
#   taskset -c 0,1 hetee-bench infer --model M --batch B --images N --threads 2 --json
# printing every run (wall, host CPU, enclave CPU, agreement with plaintext)
# and the medians of each, with their ratio.
#
# usage: bench/scaling.sh [-b BIN] [-m MODEL] [-B BATCH] [-n IMAGES] [-r ROUNDS] [-q] [-T]
#   -b  hetee-bench binary (default build-release/bin/hetee-bench)
#   -q  before each run, wait (up to 60 s) until no other process is
#       runnable on the machine for 1 s (/proc/stat procs_running), so the
#       runs see an idle machine when there is one; the wait is reported
#   -T  no taskset (only --threads 1 / --threads 2, which pins too)
set -eu
BIN=build-release/bin/hetee-bench
MODEL=models/e2dm.onnx
BATCH=64
IMAGES=1024
ROUNDS=5
QUIET=0
TASKSET=1
while getopts b:m:B:n:r:qT o; do
  case $o in
  b) BIN=$OPTARG ;;
  m) MODEL=$OPTARG ;;
  B) BATCH=$OPTARG ;;
  n) IMAGES=$OPTARG ;;
  r) ROUNDS=$OPTARG ;;
  q) QUIET=1 ;;
  T) TASKSET=0 ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done

# procs_running counts this shell's reader too: 1 means nothing else runs
running() { awk '/^procs_running/ {print $2}' /proc/stat; }
wait_quiet() {
  [ "$QUIET" = 1 ] || return 0
  waited=0 calm=0
  while [ "$calm" -lt 5 ] && [ "$waited" -lt 300 ]; do
    if [ "$(running)" -le 1 ]; then calm=$((calm + 1)); else calm=0; fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "  (waited $((waited / 5)) s for a quiet machine; load $(cut -d' ' -f1 /proc/loadavg))"
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "lscpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u '+%F %H:%M UTC')"
echo "model $MODEL, batch $BATCH, $IMAGES images, $ROUNDS alternated rounds"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for T in 1 2; do
    cpus=0
    [ "$T" = 2 ] && cpus=0,1
    wait_quiet
    if [ "$TASKSET" = 1 ]; then
      taskset -c $cpus "$BIN" infer --model "$MODEL" --batch "$BATCH" --images "$IMAGES" --threads $T --json 2>/dev/null >"$out.j"
    else
      "$BIN" infer --model "$MODEL" --batch "$BATCH" --images "$IMAGES" --threads $T --json 2>/dev/null >"$out.j"
    fi
    /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("%s %s %.4f %.4f %.4f %.4f" % (sys.argv[2], sys.argv[3], d["total_s"], d["host_cpu_s"], d["enclave_s"], d["agree"]))
' "$out.j" "$r" "$T" | tee -a "$out"
  done
  r=$((r + 1))
done
rm -f "$out.j"
/usr/bin/python3 - "$out" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for T in ("1", "2"):
    x = [r for r in rows if r[1] == T]
    w = [float(r[2]) for r in x]
    med[T] = statistics.median(w)
    print("%s CPU%s: wall median %.4f s (%.4f-%.4f), host CPU median %.4f s, enclave CPU median %.4f s, agree min %.4f" % (
        T, "s" if T == "2" else "", med[T], min(w), max(w), statistics.median(float(r[3]) for r in x),
        statistics.median(float(r[4]) for r in x), min(float(r[5]) for r in x)))
print("ratio of the medians (1 CPU / 2 CPUs): %.3f" % (med["1"] / med["2"]))
EOF
