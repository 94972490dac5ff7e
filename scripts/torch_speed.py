#!/usr/bin/env python3
"""PyTorch's bare forward next to `bench-report`'s full surrogate step, on the same machine.

Reads a `bench-report` JSON (default `results/bench/report.json`), and for every network row of
the default backend times a PyTorch MLP of the same widths (nn.Linear + exact-erf GELU between
layers, random weights), batch, thread count and precision (`bf16`: weights and activations in
bf16, oneDNN picks AMX / AVX512-BF16 where the CPU has them). Protocol as `bench-report`'s: the
best of five measuring windows, with the median. PyTorch times the network alone; our rows
time the whole step (transform of the state, network, inverse transform), so the ratio is
conservative.

Writes the side-by-side rows as JSON (`--output`, default `results/bench/pytorch.json`) and
prints a markdown table. Needs `pip install torch` (the CPU build is enough).

Usage: python3 scripts/torch_speed.py [--report FILE] [--output FILE] [--seconds 3]
"""
import argparse
import json
import os
import platform
import time

import torch
import torch.nn as nn

WINDOWS = 5


def mlp(widths):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers).eval()


def rate(seconds, per_call, fn):
    """States/s of the best of WINDOWS windows (at least 3 calls each), and the median."""
    fn()
    window = seconds / WINDOWS
    rates = []
    for _ in range(WINDOWS):
        start = time.perf_counter()
        calls = 0
        while time.perf_counter() - start < window or calls < 3:
            fn()
            calls += 1
        rates.append(calls * per_call / (time.perf_counter() - start))
    rates.sort()
    return rates[-1], rates[WINDOWS // 2]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    keep = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return sorted(x for x in flags if x in keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report", default="results/bench/report.json", help="bench-report JSON to match")
    ap.add_argument("--output", default="results/bench/pytorch.json", help="JSON written")
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per entry [s]")
    a = ap.parse_args()
    with open(a.report) as f:
        report = json.load(f)
    default_backend = "onednn" if report["machine"].get("onednn") else "gemm"
    ours = [
        r for r in report["results"]
        if r["widths"] and r["backend"] == default_backend and r["precision"] in ("f32", "bf16")
    ]
    torch.manual_seed(0)
    nets = {}
    rows = []
    for r in ours:
        widths = tuple(r["widths"])
        if widths not in nets:
            m32 = mlp(widths)
            m16 = mlp(widths).to(torch.bfloat16)
            m16.load_state_dict({k: v.to(torch.bfloat16) for k, v in m32.state_dict().items()})
            nets[widths] = {"f32": m32, "bf16": m16}
        torch.set_num_threads(r["threads"])
        dtype = torch.float32 if r["precision"] == "f32" else torch.bfloat16
        x = torch.randn(r["batch"], widths[0]).to(dtype)
        net = nets[widths][r["precision"]]
        with torch.inference_mode():
            best, median = rate(a.seconds, r["batch"], lambda: net(x))
        row = {
            "mechanism": r["mechanism"],
            "option": r["option"],
            "precision": r["precision"],
            "widths": list(widths),
            "parameters": r["parameters"],
            "batch": r["batch"],
            "threads": r["threads"],
            "ours_states_per_second": r["states_per_second"],
            "pytorch_states_per_second": best,
            "pytorch_median_states_per_second": median,
            "ratio": r["states_per_second"] / best,
        }
        print(
            f"{row['mechanism']} {row['option']} {row['precision']} batch {row['batch']} threads {row['threads']}: "
            f"ours {row['ours_states_per_second']:,.0f}, PyTorch {best:,.0f} states/s ({row['ratio']:.2f}x)",
            flush=True,
        )
        rows.append(row)
    out = {
        "pytorch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "report": a.report,
        "report_revision": report.get("revision", "unknown"),
        "seconds_per_entry": a.seconds,
        "rows": rows,
    }
    tmp = a.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, a.output)
    print("\n| net | precision | parameters | batch | threads | ours (full step) | PyTorch (forward) | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mechanism']} {r['option']} | {r['precision']} | {r['parameters']:,} | {r['batch']} | "
            f"{r['threads']} | {r['ours_states_per_second']:,.0f} | {r['pytorch_states_per_second']:,.0f} | "
            f"{r['ratio']:.2f}x |"
        )
    print(f"\nwrote {a.output}")


if __name__ == "__main__":
    main()
