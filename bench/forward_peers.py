"""The peers' forward throughput at 224 px, on the same threads and batches as bench_forward:
PyTorch eager (NCHW, channels_last, channels_last + bf16 autocast), ONNX Runtime (CPU EP,
float32) and OpenVINO (its default precision, float32 and bf16 hints), on torchvision's nets
of the same names as headstart's backbones (vgg16, resnet18, resnet50, mobilenet_v2,
mobilenet_v3_large, efficientnet_b0, convnext_tiny, ...) and efficientnet_lite_pytorch's Lite0,
with random weights (speed does not depend on them).

Usage: forward_peers.py THREADS BATCHES(1,32) REPS [--nets vgg16,efficientnet_lite0,...]
Prints "net batch engine img/s" lines (best of REPS after one warm-up); an engine that cannot
run prints its reason on stderr and no line. Runs in .venv-bench (tools/setup-bench-env.sh).
"""
import argparse
import os
import sys
import tempfile
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("threads", type=int, nargs="?", default=2)
parser.add_argument("batches", nargs="?", default="1,32")
parser.add_argument("reps", type=int, nargs="?", default=3)
parser.add_argument("--nets", default="vgg16,efficientnet_lite0")
args = parser.parse_args()
batches = [int(b) for b in args.batches.split(",")]
torch.set_num_threads(args.threads)


def build(name):
    if name.startswith("efficientnet_lite"):
        from efficientnet_lite_pytorch import EfficientNet
        return EfficientNet.from_name(name.replace("_", "-"))
    import torchvision
    return getattr(torchvision.models, name)()  # the same layers as headstart's net


def best_rate(run, n):
    best = float("inf")
    for r in range(args.reps + 1):
        t0 = time.perf_counter()
        run()
        t = time.perf_counter() - t0
        if r > 0:
            best = min(best, t)
    return n / best


def report(name, n, engine, rate):
    print(f"{name} {n} {engine} {rate:.2f}", flush=True)


def pytorch_engines(name, model, n):
    x = torch.randn(n, 3, 224, 224)
    with torch.no_grad():
        report(name, n, "pytorch", best_rate(lambda: model(x), n))
        cl = model.to(memory_format=torch.channels_last)
        xc = x.to(memory_format=torch.channels_last)
        report(name, n, "pytorch_cl", best_rate(lambda: cl(xc), n))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            report(name, n, "pytorch_cl_bf16", best_rate(lambda: cl(xc), n))
        model.to(memory_format=torch.contiguous_format)


def export_onnx(model, path):
    x = torch.randn(1, 3, 224, 224)
    torch.onnx.export(model, x, path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)


def onnxruntime_engine(name, path, n):
    import numpy as np
    import onnxruntime as ort
    opt = ort.SessionOptions()
    opt.intra_op_num_threads = args.threads
    opt.inter_op_num_threads = 1
    opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, opt, providers=["CPUExecutionProvider"])
    x = np.random.randn(n, 3, 224, 224).astype(np.float32)
    report(name, n, "onnxruntime", best_rate(lambda: sess.run(None, {"x": x}), n))


def openvino_engines(name, path, n):
    import numpy as np
    import openvino as ov
    core = ov.Core()
    x = np.random.randn(n, 3, 224, 224).astype(np.float32)
    for engine, hint in (("openvino", None), ("openvino_f32", "f32"),
                         ("openvino_bf16", "bf16")):
        model = core.read_model(path)
        model.reshape({"x": [n, 3, 224, 224]})
        config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        try:
            compiled = core.compile_model(model, "CPU", config)
        except Exception as e:  # bf16 where the CPU has none: say so, go on
            print(f"{name} {engine}: {e}".splitlines()[0], file=sys.stderr)
            continue
        if engine == "openvino":
            used = compiled.get_property("INFERENCE_PRECISION_HINT")
            print(f"openvino default precision on this CPU: {used}", file=sys.stderr)
        request = compiled.create_infer_request()
        report(name, n, engine, best_rate(lambda: request.infer({"x": x}), n))


with tempfile.TemporaryDirectory() as tmp:
    for name in args.nets.split(","):
        try:
            model = build(name).eval()
        except Exception as e:
            print(f"{name} unavailable: {e}", file=sys.stderr)
            continue
        path = os.path.join(tmp, f"{name}.onnx")
        try:
            export_onnx(model, path)
        except Exception as e:
            print(f"{name}: ONNX export failed: {e}", file=sys.stderr)
            path = None
        for n in batches:
            pytorch_engines(name, model, n)
            for engine in (onnxruntime_engine, openvino_engines):
                if not path:
                    continue
                try:
                    engine(name, path, n)
                except Exception as e:
                    print(f"{name} {n} {engine.__name__}: {e}", file=sys.stderr)
