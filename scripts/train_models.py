#!/usr/bin/python3
"""train_models.py — trains and exports hetee's bundled models (models/*.onnx).

Run by hand with Debian's interpreter (python3-torch, python3-onnx):

    /usr/bin/python3 scripts/train_models.py            # all models + test graphs
    /usr/bin/python3 scripts/train_models.py mlp cnn    # only some models
    /usr/bin/python3 scripts/train_models.py testdata   # only tests/nn/data

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz),
parsed here as IDX with gzip + numpy. Pixels are scaled to [0,1] (x / 255);
no mean/std normalisation. Every model records that in its ONNX metadata
(`hetee.input_scale` = `1/255`), which `hetee plain` reads.

Determinism: fixed seeds, torch.set_num_threads(2), deterministic algorithms.
Training takes a few minutes on 2 cores; `make test` never runs this script:
the exported ONNX files and the saved logits are committed.

For every model it writes
  models/<name>.onnx              opset 13, dynamic batch axis "batch"
  models/<name>.logits100.npy     float32 [100,10]: PyTorch's logits for the
                                  first 100 test images (tests compare the C
                                  reference engine against them)
and prints its accuracy on the full 10000-image test set (models/README.md).

`testdata` writes small graphs for tests/nn (tests/nn/data): real PyTorch
exports exercising every supported operator (zoo, zoo_gap; opset 13, plus
copies at opsets 11 and 17) with inputs and PyTorch's outputs, a Conv followed
by BatchNormalization (built with onnx.helper, since PyTorch's exporter fuses
that pair itself; expected output from torch.nn.functional), a real export
with an unsupported operator (Abs), and hand-built graphs with inconsistent
shapes (onnx.helper). Everything is seeded: reruns write identical files.
"""
import gzip
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/usr/share/datasets/fashion-mnist"
MODELS = os.path.join(ROOT, "models")
TESTDATA = os.path.join(ROOT, "tests", "nn", "data")
OPSET = 13
SEED = 20181015  # E2DM's CCS 2018 date; any fixed value would do


def read_idx(path):
    """Parses an IDX file (big-endian header, magic 0x0000 0x08 ndim)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    assert raw[0] == 0 and raw[1] == 0 and raw[2] == 0x08, "unsigned-byte IDX expected"
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def load_split(kind):
    x = read_idx(os.path.join(DATA, f"{kind}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATA, f"{kind}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # [N,1,28,28]
    return x, torch.from_numpy(y.astype(np.int64))


class Square(nn.Module):
    """x * x; exports as ONNX Mul(x, x)."""

    def forward(self, x):
        return x * x


def make_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def make_cnn():
    # LeNet-5 style: 28x28 -> conv5 (pad 2) 6x28x28 -> pool 6x14x14
    # -> conv5 16x10x10 -> pool 16x5x5 -> 400 -> 128 -> 10.
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 128), nn.ReLU(), nn.Linear(128, 10))


def make_e2dm():
    # E2DM (Jiang et al., CCS 2018), section 6: conv 7x7 stride 3 to 5 channels
    # (8x8 outputs), square, FC 320 -> 64, square, FC 64 -> 10.
    return nn.Sequential(
        nn.Conv2d(1, 5, 7, stride=3), Square(), nn.Flatten(),
        nn.Linear(320, 64), Square(), nn.Linear(64, 10))


# ------------------------------------------ extra models (shapes the above lack)
# Not tuned for any engine: odd widths and channel counts, stride-2 convs,
# a standalone BatchNormalization, tanh/sigmoid with wide pre-activations,
# a deeper conv stack. Short training; accuracy is secondary.

def make_mlp_odd():
    # 784 -> 100 tanh -> 37 sigmoid -> 10. No input or weight normalisation:
    # pre-activations grow wide in training (measured on the test set: tanh
    # inputs in [-35.3, 36.3], sigmoid inputs in [-14.4, 11.9]).
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.Tanh(),
                         nn.Linear(100, 37), nn.Sigmoid(), nn.Linear(37, 10))


def make_cnn_s2():
    # 28x28 -> conv3 s2 p1 8x14x14, ReLU -> conv3 s2 p1 12x7x7, LeakyReLU(0.1)
    # -> 588 -> 10.
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
        nn.Flatten(), nn.Linear(588, 10))


def make_cnn_bn():
    # 28x28 -> conv5 6x24x24, ReLU, BatchNorm (after the ReLU: not foldable
    # into the conv, hetee keeps it as an AFFINE layer) -> avg-pool 2 6x12x12
    # -> conv3 10x10x10, tanh -> global average pool 10 -> 10.
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.BatchNorm2d(6), nn.AvgPool2d(2),
        nn.Conv2d(6, 10, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(10, 10))


def make_deep():
    # 4 convs 3x3 pad 1, 1->4->8 (max-pool 2) ->8->16 (max-pool 2): 16x7x7
    # -> 784 -> 32 -> 10, ReLU throughout.
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


# name -> (constructor, fraction of the training set, epochs, learning rate)
SPECS = {
    "mlp": (make_mlp, 1.0, 10, 1e-3),
    "mlp_small": (make_mlp, 0.1, 20, 1e-3),
    "cnn": (make_cnn, 1.0, 8, 1e-3),
    "e2dm": (make_e2dm, 1.0, 12, 1e-3),
    # extra models (about 4 minutes together on the shared 2 cores)
    "mlp_odd": (make_mlp_odd, 1.0, 10, 1e-3),
    "cnn_s2": (make_cnn_s2, 1.0, 8, 1e-3),
    "cnn_bn": (make_cnn_bn, 1.0, 8, 1e-3),
    "deep": (make_deep, 1.0, 5, 1e-3),
}


# ONNX ops an exported model must contain (the export must not fuse them away).
REQUIRED_OPS = {"cnn_bn": {"BatchNormalization"}}


def report_preactivations(model, x):
    """Prints the range of the inputs of every Tanh/Sigmoid over x."""
    seen = {}

    def hook(mod, inp, out, key):
        v = inp[0]
        lo, hi = seen.get(key, (float("inf"), float("-inf")))
        seen[key] = (min(lo, v.min().item()), max(hi, v.max().item()))

    hooks = [m.register_forward_hook(lambda mod, i, o, k=f"{n}:{type(m).__name__}": hook(mod, i, o, k))
             for n, m in model.named_modules() if isinstance(m, (nn.Tanh, nn.Sigmoid))]
    if not hooks:
        return
    evaluate(model, x, torch.zeros(x.shape[0], dtype=torch.int64))
    for h in hooks:
        h.remove()
    for key, (lo, hi) in seen.items():
        print(f"  {key} input range on the test set: [{lo:.2f}, {hi:.2f}]", flush=True)


def train(model, x, y, epochs, lr, batch=64):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(SEED)
    n = x.shape[0]
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        print(f"  epoch {ep + 1}/{epochs} loss {total / n:.4f}", flush=True)


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000]) for i in range(0, x.shape[0], 1000)])
    return logits, (logits.argmax(1) == y).float().mean().item()


def export(model, path, example, meta):
    model.eval()
    torch.onnx.export(model, example, path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    m = onnx.load(path)
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


def build_model(name, xtr, ytr, xte, yte):
    ctor, frac, epochs, lr = SPECS[name]
    torch.manual_seed(SEED)
    model = ctor()
    n = int(round(xtr.shape[0] * frac))
    print(f"{name}: training on {n} images, {epochs} epochs", flush=True)
    t0 = time.time()
    train(model, xtr[:n], ytr[:n], epochs, lr)
    logits, acc = evaluate(model, xte, yte)
    print(f"{name}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
    report_preactivations(model, xte)
    path = os.path.join(MODELS, f"{name}.onnx")
    export(model, path, xte[:1], {
        "hetee.input_scale": "1/255",
        "hetee.input_shape": "1,28,28",
        "hetee.trained_on": f"fashion-mnist train[:{n}]",
        "hetee.test_accuracy": f"{acc:.4f}",
    })
    np.save(os.path.join(MODELS, f"{name}.logits100.npy"),
            logits[:100].numpy().astype(np.float32))
    ops = [n.op_type for n in onnx.load(path).graph.node]
    print(f"{name}: ONNX ops {ops}", flush=True)
    missing = REQUIRED_OPS.get(name, set()) - set(ops)
    assert not missing, f"{name}: export lost {sorted(missing)}"
    return acc


# ---------------------------------------------------------------- test graphs

class Zoo(nn.Module):
    """Every supported operator in one small real export (input [B,1,12,12])."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)           # after conv: foldable
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=(1, 0))
        self.bn2 = nn.BatchNorm2d(6)           # after an activation: standalone
        self.fc1 = nn.Linear(6 * 3 * 2, 16)
        self.bn3 = nn.BatchNorm1d(16)          # after gemm: foldable
        self.fc2 = nn.Linear(16, 5)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)     # 4x12x12
        x = F.avg_pool2d(x, 2)                              # 4x6x6
        x = torch.tanh(self.conv2(x))                       # 6x3x2
        x = self.bn2(x)
        x = torch.flatten(x, 1)                             # 36
        x = torch.sigmoid(self.bn3(self.fc1(x)))
        x = self.drop(x) * x
        y = x @ self.fc2.weight.t() + self.fc2.bias         # MatMul + Add
        return F.softmax(y, dim=1)


class ZooGap(nn.Module):
    """GlobalAveragePool, MaxPool with padding, Relu, Reshape (x.view)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 2)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 3, stride=2, padding=1)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


def randomize_bn(m, gen):
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            mod.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.randn(c, generator=gen) * 0.5 + 1)
            mod.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)


def write_testdata():
    os.makedirs(TESTDATA, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    for name, net, shape in (("zoo", Zoo(), (7, 1, 12, 12)), ("zoo_gap", ZooGap(), (3, 2, 9, 9))):
        with torch.no_grad():
            randomize_bn(net, gen)
        net.eval()
        x = torch.rand(*shape, generator=gen)
        with torch.no_grad():
            y = net(x)
        path = os.path.join(TESTDATA, f"{name}.onnx")
        torch.onnx.export(net, x[:1], path, opset_version=OPSET,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          training=torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=True)
        np.save(os.path.join(TESTDATA, f"{name}.input.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(TESTDATA, f"{name}.output.npy"), y.numpy().astype(np.float32))
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"{name}: ops {ops}")
        # The same network at the ends of the supported opset range.
        for opset in (11, 17):
            torch.onnx.export(net, x[:1], os.path.join(TESTDATA, f"{name}.opset{opset}.onnx"),
                              opset_version=opset, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)

    # A real export with an operator hetee does not support (Abs).
    class WithAbs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.abs(x))

    torch.onnx.export(WithAbs().eval(), torch.zeros(1, 4), os.path.join(TESTDATA, "unsupported_abs.onnx"),
                      opset_version=OPSET, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}})

    # Conv directly followed by BatchNormalization (PyTorch's exporter fuses
    # that pair itself, so this graph is built by hand) and its expected
    # output computed independently with torch.nn.functional.
    cw = torch.randn(3, 2, 3, 3, generator=gen) * 0.5
    cb = torch.randn(3, generator=gen) * 0.1
    bn = [torch.randn(3, generator=gen) * 0.5 + 1, torch.randn(3, generator=gen) * 0.2,
          torch.randn(3, generator=gen) * 0.3, torch.rand(3, generator=gen) + 0.5]
    x = torch.rand(4, 2, 6, 6, generator=gen)
    y = F.batch_norm(F.conv2d(x, cw, cb, padding=1), bn[2], bn[3], bn[0], bn[1], False, 0.0, 1e-3)
    y = torch.flatten(F.relu(y), 1)
    inits = [numpy_helper.from_array(a.numpy().astype(np.float32), n) for a, n in
             ((cw, "w"), (cb, "b"), (bn[0], "gamma"), (bn[1], "beta"), (bn[2], "mean"), (bn[3], "var"))]
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn",
                          epsilon=1e-3),
         helper.make_node("Relu", ["n"], ["r"], name="relu"),
         helper.make_node("Flatten", ["r"], ["y"], name="flatten", axis=1)],
        "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 108])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(TESTDATA, "conv_bn.onnx"))
    np.save(os.path.join(TESTDATA, "conv_bn.input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(TESTDATA, "conv_bn.output.npy"), y.numpy().astype(np.float32))

    # Hand-built graphs with inconsistent shapes.
    def graph_model(name, nodes, inits, in_shape, out_name="y"):
        g = helper.make_graph(
            nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
            initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        onnx.save(m, os.path.join(TESTDATA, name + ".onnx"))

    def t(name, shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, np.zeros(shape, np.float32).ravel().tolist())

    # Gemm weight expects 6 inputs but the previous layer gives 8.
    graph_model("bad_gemm_shape",
                [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
                 helper.make_node("Relu", ["h"], ["r"], name="relu1"),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)],
                [t("w1", [8, 16]), t("b1", [8]), t("w2", [10, 6]), t("b2", [10])],
                ["N", 16])
    # Conv bias has the wrong length (3 for 4 output channels).
    graph_model("bad_conv_bias",
                [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv0", kernel_shape=[3, 3])],
                [t("w", [4, 1, 3, 3]), t("b", [3])], ["N", 1, 8, 8])
    # Add of two tensors whose shapes do not broadcast.
    graph_model("bad_add_shape",
                [helper.make_node("Add", ["x", "c"], ["y"], name="add0")],
                [t("c", [7])], ["N", 10])
    # Conv kernel larger than the input.
    graph_model("bad_conv_kernel",
                [helper.make_node("Conv", ["x", "w"], ["y"], name="big", kernel_shape=[9, 9])],
                [t("w", [2, 1, 9, 9])], ["N", 1, 5, 5])
    print("test graphs written to", TESTDATA)


def main(argv):
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    names = [a for a in argv if a in SPECS]
    want_test = "testdata" in argv or not argv
    if not argv:
        names = list(SPECS)
    if names:
        os.makedirs(MODELS, exist_ok=True)
        xtr, ytr = load_split("train")
        xte, yte = load_split("t10k")
        for name in names:
            build_model(name, xtr, ytr, xte, yte)
    if want_test:
        write_testdata()


if __name__ == "__main__":
    main(sys.argv[1:])
