#!/usr/bin/env bash
# make demo: hetee's main job, end to end, from a Release build directory.
#   1. CKKS: keygen, encrypt, ct x ct products, rotations, decrypt, with the
#      precision reached and the time of each step (`hetee demo`).
#   2. The enclave: a simulated platform is created, the enclave binary is
#      measured, started through the launcher, and its attestation evidence
#      verified the way a model or data provider would (`hetee attest`).
#   3. The plaintext twin: the bundled models classify Fashion-MNIST
#      (`hetee plain`), the reference every encrypted result is checked against.
#   4. Encrypted inference (`hetee run`): the model provider encrypts the
#      weights, the data provider the images, the host computes every linear
#      layer ciphertext x ciphertext and the enclave refreshes between layers
#      and releases each prediction sealed to the data provider; encrypted vs
#      plaintext accuracy and time per image (`hetee plan` shows the plan).
#   5. The same as three separate parties over the network
#      (scripts/demo_service.sh): `hetee server` with its enclave on a loopback
#      port, MP and DP identities, an encrypted model upload, encrypted
#      inference on 200 images, and what the server stored.
set -euo pipefail
B="${1:-build-release}"
H="$B/bin/hetee"
DATA=/usr/share/datasets/fashion-mnist

echo "== 1. CKKS end to end (logN 13) =="
"$H" demo

echo
echo "== 2. Enclave attestation (sim backend: no hardware isolation) =="
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$H" platform init --dir "$tmp/platform"
# The model provider's identity; the enclave's measured configuration names
# it as the only party allowed to set release policies.
"$H" keygen --role mp --out "$tmp/mp.key"
m=$("$H" enclave measure "$B/bin/hetee-enclave" --mp "$tmp/mp.key.pub")
echo "enclave measurement (binary + configuration): $m"
"$H" attest --local "$B/bin/hetee-enclave" --platform "$tmp/platform" --expect "$m" --mp "$tmp/mp.key.pub"

echo
echo "== 3. Plaintext reference on the 10000 Fashion-MNIST test images =="
for model in mlp cnn e2dm; do
  printf '%-6s ' "$model"
  "$H" plain --model "models/$model.onnx" "$DATA/t10k-images-idx3-ubyte.gz" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz" | tail -n 1
done

echo
echo "== 4. Encrypted inference: model provider, data provider, host and enclave =="
"$H" plan models/e2dm.onnx
for model in e2dm mlp cnn; do
  echo
  echo "-- $model, first 1000 test images, micro-batches of 64, 2 host threads"
  "$H" run --model "models/$model.onnx" "$DATA/t10k-images-idx3-ubyte.gz" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz" --count 1000 --threads 2
done

echo
echo "== 5. The networked service: hetee server, a model provider and a data provider over HTTP =="
bash scripts/demo_service.sh "$B" 200
