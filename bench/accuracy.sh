#!/bin/sh
# bench/accuracy.sh — the README's accuracy table: every bundled model on
# all 10000 Fashion-MNIST test images, encrypted end to end, as
#   hetee-bench infer --model models/M.onnx --batch 64 --images 10000 --threads 2 --json
# printing one Markdown row per model (encrypted and plaintext accuracy,
# agreement, ms per image, enclave share, integrity checks' share of the
# wall time, encrypted weights) and the CPU model and load it ran at.
#
# usage: bench/accuracy.sh [-b BIN] [-n IMAGES] [MODEL...]
#   -b  hetee-bench binary (default build-release/bin/hetee-bench)
#   -n  images per model (default 10000)
#   MODEL  names under models/ (default: every models/*.onnx)
set -eu
BIN=build-release/bin/hetee-bench
IMAGES=10000
while getopts b:n: o; do
  case $o in
  b) BIN=$OPTARG ;;
  n) IMAGES=$OPTARG ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
  set --
  for f in models/*.onnx; do set -- "$@" "$(basename "$f" .onnx)"; done
fi
PY=/usr/bin/python3
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1 /proc/loadavg), $IMAGES images, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "| model | encrypted | plaintext | agreement | ms / image | enclave share | checks | encrypted weights |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
fail=0
for m in "$@"; do
  out=$("$BIN" infer --model "models/$m.onnx" --batch 64 --images "$IMAGES" --threads 2 --json 2>/dev/null) || {
    echo "| \`$m\` | failed | | | | | | |"
    fail=1
    continue
  }
  printf '%s' "$out" | $PY -c '
import json, sys
d = json.load(sys.stdin)
agree = d["agree"] * 100
print("| `%s` | %.4f | %.4f | %s%% | %.2f | %.1f%% | %.1f%% | %.1f MiB |" % (
    sys.argv[1], d["acc_encrypted"], d["acc_plain"],
    ("%.2f" % agree).rstrip("0").rstrip("."), d["per_image_ms"], 100 * d["enclave_share"],
    100 * d["integrity_share_total"], d["model_ct_bytes"] / 2**20))
' "$m"
done
echo "# load after: $(cut -d' ' -f1 /proc/loadavg)"
exit $fail
