#!/usr/bin/env bash
# demo_service.sh — the three-party service end to end on this machine:
# a sim platform, `hetee server` with its enclave on a free loopback port,
# a model provider (MP) and a data provider (DP) with their own identities,
# the MP uploads models/cnn.onnx encrypted and registers its digest (the
# server binds it in the enclave), the DP runs bound encrypted inference
# (signed authorization, every layer checked, results sealed to its identity)
# on Fashion-MNIST test images and gets the accuracy next to the plaintext
# reference, the MP refines models/mlp_small.onnx on 512 samples the DP
# encrypts (accuracy before / after), then what the server stored is listed
# and everything stops.
# Usage: scripts/demo_service.sh [BUILD_DIR] [COUNT]   (default build, 200)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
COUNT=${2:-200}
BIN=$BUILD/bin
IMAGES=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
LABELS=/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
W=$(mktemp -d /tmp/hetee-service-demo-XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

echo "== 1. sim platform (stands for the CPU vendor's attestation root)"
"$BIN/hetee" platform init --dir "$W/platform" >/dev/null
echo "   $W/platform"

echo "== 2. identities: the model provider first (the enclave's configuration names it)"
"$BIN/hetee" keygen --role mp --home "$W/mp" | sed 's/^/   /'
MEAS=$("$BIN/hetee" enclave measure "$BIN/hetee-enclave" --mp "$W/mp/id.pub" | grep -o '[0-9a-f]\{64\}' | head -1)
echo "   expected enclave measurement (binary + configuration with mp=): $MEAS"
"$BIN/hetee" trust --home "$W/mp" --trust-platform "$W/platform" --trust-measurement "$MEAS" >/dev/null
"$BIN/hetee" keygen --role dp --home "$W/dp" --trust-platform "$W/platform" --trust-measurement "$MEAS" | sed 's/^/   /'

echo "== 3. hetee server on a free loopback port"
"$BIN/hetee" server --listen 127.0.0.1:0 --data-dir "$W/data" --platform "$W/platform" --mp "$W/mp/id.pub" \
  --port-file "$W/port" >"$W/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 600); do [ -s "$W/port" ] && break; kill -0 $SERVER_PID || { cat "$W/server.log"; exit 1; }; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$W/port")
grep -v WARNING "$W/server.log" | sed 's/^/   /'
curl -s "$URL/v1/health" | sed 's/^/   health: /'; echo

echo "== 4. the DP attests the server's enclave"
"$BIN/hetee" attest --server "$URL" --home "$W/dp" | sed 's/^/   /'

echo "== 5. the MP uploads models/cnn.onnx, encrypted on its side, for this DP (labels only)"
T0=$(date +%s.%N)
MODEL=$("$BIN/hetee" model upload "$ROOT/models/cnn.onnx" --allow "$W/dp/id.pub" --output label \
  --home "$W/mp" --server "$URL" | tee "$W/upload.out" | tail -1)
T1=$(date +%s.%N)
head -n -1 "$W/upload.out" | sed 's/^/   /'
echo "   model id $MODEL ($(echo "$T1 - $T0" | bc) s including attestation and encryption)"

echo "== 6. the DP runs encrypted inference on $COUNT test images"
T0=$(date +%s.%N)
"$BIN/hetee" infer --model "$MODEL" "$IMAGES" --labels "$LABELS" --count "$COUNT" --home "$W/dp" --server "$URL" \
  >"$W/infer.out" 2>"$W/infer.err"
T1=$(date +%s.%N)
ENC=$(tail -1 "$W/infer.out" | awk '{print $2}')
sed 's/^/   /' "$W/infer.err"
printf '   encrypted: accuracy %s on %s images, %.1f ms per image end to end (encrypt, upload, run, fetch, open)\n' \
  "$ENC" "$COUNT" "$(echo "($T1 - $T0) * 1000 / $COUNT" | bc -l)"

echo "== 7. plaintext reference (hetee plain) on the same images"
PLAIN=$("$BIN/hetee" plain --model "$ROOT/models/cnn.onnx" "$IMAGES" --labels "$LABELS" --count "$COUNT" 2>/dev/null \
  | grep -i accuracy | grep -o '0\.[0-9]*' | head -1 || true)
echo "   plaintext: accuracy ${PLAIN:-?}    encrypted: accuracy $ENC"

echo "== 8. refining (issue 11): the MP refines models/mlp_small.onnx's last layer on 512 encrypted labelled"
echo "   samples the DP submits (Fashion-MNIST training images 30000..30511, not among the 10% it was trained on)"
TRAIN_IMAGES=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
TRAIN_LABELS=/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz
T0=$(date +%s.%N)
MLP=$("$BIN/hetee" model upload "$ROOT/models/mlp_small.onnx" --allow "$W/dp/id.pub" --home "$W/mp" --server "$URL" | tail -1)
JOB=$("$BIN/hetee" refine start --model "$MLP" --onnx "$ROOT/models/mlp_small.onnx" --allow "$W/dp/id.pub" \
  --epochs 1 --epoch-samples 512 --lr 0.01 --momentum 0.9 --home "$W/mp" --server "$URL" | tail -1)
"$BIN/hetee" refine submit --job "$JOB" "$TRAIN_IMAGES" "$TRAIN_LABELS" --offset 30000 --count 512 \
  --home "$W/dp" --server "$URL" | sed 's/^/   DP: /'
for _ in $(seq 1200); do
  "$BIN/hetee" refine status --job "$JOB" --home "$W/mp" --server "$URL" >"$W/refine.status"
  grep -q ': running' "$W/refine.status" || break
  sleep 0.2
done
sed 's/^/   /' "$W/refine.status"
"$BIN/hetee" model fetch --model "$MLP" -o "$W/mlp_refined.onnx" --home "$W/mp" --server "$URL" | sed 's/^/   MP: /'
T1=$(date +%s.%N)
BEFORE=$("$BIN/hetee" plain --model "$ROOT/models/mlp_small.onnx" "$IMAGES" --labels "$LABELS" 2>/dev/null | tail -1)
AFTER=$("$BIN/hetee" plain --model "$W/mlp_refined.onnx" "$IMAGES" --labels "$LABELS" 2>/dev/null | tail -1)
echo "   10000 test images: before refining $BEFORE, after $AFTER ($(echo "$T1 - $T0" | bc) s from upload to the fetched model)"

echo "== 9. what the server stored (ciphertexts and sealed messages only)"
( cd "$W/data" && find . -type f | sort | while read -r f; do
    printf '   %-22s %12s bytes  %s\n' "$f" "$(stat -c %s "$f")" "$(head -c 4 "$f" | tr -c '[:print:]' '.')"
  done )
echo "   HTEM = encrypted model (CKKS ciphertexts + public plan), HTEI = encrypted input followed by the DP's"
echo "   input values sealed to the enclave (its witness; the DP's signed authorization of it is in the db),"
echo "   HTRS = releases sealed to the DP's identity by the enclave's release key,"
echo "   HTSL = enclave state sealed by the platform, .plan = public plan, db = SQLite,"
echo "   HTRK = the server's own X25519 key for v3 request authentication (no party data; docs/api.md),"
echo "   refine/*.htrb = the DP's encrypted labelled batches, refine/*.ckpt = the encrypted refine state of the"
echo "   trained layers (weights, momentum, cursor) with the enclave's sealed part of the job,"
echo "   refine/*.ckpt.frozen = the frozen layers' ciphertexts, written once, named by digest in each .ckpt"
echo "   bound inference (issue 9): $(grep -c 'bound in the enclave' "$W/server.log") model load(s) into the enclave:"
grep 'bound in the enclave' "$W/server.log" | sed 's/^/   /' 
curl -s "$URL/metrics" | grep -E '^hetee_(jobs_total|images_total|enclave_time_share|job_latency_seconds_sum)' | sed 's/^/   /'

echo "== 10. shutdown"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" && echo "   server stopped cleanly"
SERVER_PID=
