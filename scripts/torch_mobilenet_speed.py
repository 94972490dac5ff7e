#!/usr/bin/env python3
"""PyTorch's MobileNetV2 training and evaluation speed, f32 and bf16, next to our engine.

Times torchvision's mobilenet_v2(num_classes=10) at batch 128 on random 32x32 images, for both
stride layouts (torchvision's, and the CIFAR strides: stem and the second stage at stride 1),
in three settings: f32 (NCHW), f32 channels_last, and bf16 autocast with
channels_last (oneDNN picks AMX or AVX512-BF16 where the CPU has them). A training step is
forward, cross-entropy, backward and an SGD (momentum 0.9) update; evaluation is an
inference-mode forward in eval mode. Median of `--rounds` measuring windows.

Run it in the same sitting as `cargo run --release -p vision --example engine_time -- 128
torchvision|cifar f32|bf16 2`, which prints our images/s for the same shapes.

Usage: python3 scripts/torch_mobilenet_speed.py [--threads 2] [--rounds 3] [--output FILE]
Needs torch and torchvision (the CPU build is enough).
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def mobilenet(cifar_strides):
    m = torchvision.models.mobilenet_v2(num_classes=10)
    if cifar_strides:
        m.features[0][0].stride = (1, 1)
        m.features[2].conv[1][0].stride = (1, 1)
    return m


def timeit(fn, min_s):
    fn()
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    n = max(1, int(min_s / max(one, 1e-9)))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def setting(cifar_strides, mode, batch):
    m = mobilenet(cifar_strides)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if mode != "f32":
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-5)
    bf16 = mode == "bf16_autocast_channels_last"

    def step():
        m.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()

    def evaluate():
        m.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m(x)

    return step, evaluate


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads")
    ap.add_argument("--rounds", type=int, default=3, help="measuring windows per entry (median)")
    ap.add_argument("--batch", type=int, default=128, help="images per step")
    ap.add_argument("--output", default=None, help="JSON written (none when absent)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    res = {
        "torch": torch.__version__,
        "threads": a.threads,
        "batch": a.batch,
        "cpu_flags": sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f"))),
        "machine": platform.machine(),
        "images_per_s": {},
    }
    for layout, cs in (("torchvision_strides", False), ("cifar_strides", True)):
        for mode in ("f32", "f32_channels_last", "bf16_autocast_channels_last"):
            step, evaluate = setting(cs, mode, a.batch)
            tr = [timeit(step, 1.5 if not cs else 3.0) for _ in range(a.rounds)]
            ev = [timeit(evaluate, 0.5) for _ in range(a.rounds)]
            row = {"train": a.batch / statistics.median(tr), "eval": a.batch / statistics.median(ev)}
            res["images_per_s"][f"{layout}/{mode}"] = row
            print(f"{layout:20} {mode:28} train {row['train']:8.1f}  eval {row['eval']:8.1f} images/s", flush=True)
    if a.output:
        with open(a.output + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.replace(a.output + ".tmp", a.output)


if __name__ == "__main__":
    main()
