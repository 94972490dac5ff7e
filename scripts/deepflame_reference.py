#!/usr/bin/env python3
"""A DeepFlame / DFODE-kit style chemistry MLP trained and judged in PyTorch, next to the
workspace: the "externally trained" network that `combustion import` reads, and the judge of
what `combustion export` writes.

    train --data LABELED.h5 --output NET.pt
        trains the DFODE-kit layout (Linear + GELU, `net.linear_layer_{k}`) on a labeled file
        of `combustion label`: inputs [T, P, BCT(Y)] z-scored, targets the Box-Cox increments of
        the first ns - 1 species over the step, z-scored; L1 loss, Adam, cosine learning rate.
        Saves torch.save({'net': state_dict, 'data_in_mean': ..., ...}) with the statistics as
        numpy float64 arrays, as DFODE-kit does.
    compare --checkpoint A.pt --input STATES.h5 --predicted NEXT.h5
        PyTorch's next states for every state of a DFODE-layout file next to the ones
        `combustion predict` wrote: per species the largest |Y_ours - Y_torch| over the largest
        |Y_torch - Y| (the predicted change), and the largest such ratio.
    judge --data HELDOUT.h5 --checkpoint A.pt [B.pt ...]
        runs each checkpoint with DeepFlame's inference contract (float32 forward, float64
        post-processing) on the labeled states and prints, as JSON, the one-step errors against
        the integrator: per species the RMSE of Y' and that RMSE over the largest |dY|, their
        mean over species, and the L1 of the normalized targets.

Needs torch, numpy and h5py (not part of the project's tests or CI).
"""

import argparse
import json
import math
import time

import h5py
import numpy as np
import torch

LAMBDA = 0.1


def bct(y):
    return (np.maximum(y, 0.0) ** LAMBDA - 1.0) / LAMBDA


def read_labeled(path):
    with h5py.File(path, "r") as f:
        x0 = f["labels/state_in"][...]
        x1 = f["labels/state_out"][...]
        names = [s.decode() if isinstance(s, bytes) else s for s in f.attrs["species_names"]]
        dt = float(f["labels"].attrs["dt_s"])
    return x0, x1, names[2:], dt


def features(x0):
    return np.concatenate([x0[:, :2], bct(x0[:, 2:])], axis=1)


def targets(x0, x1):
    return bct(x1[:, 2:-1]) - bct(x0[:, 2:-1])


class NN_MLP(torch.nn.Module):
    """DeepFlame's layout: Linear layers `linear_layer_{k}` with GELU between them."""

    def __init__(self, widths):
        super().__init__()
        self.net = torch.nn.Sequential()
        for i in range(len(widths) - 1):
            self.net.add_module(f"linear_layer_{i}", torch.nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                self.net.add_module(f"gelu_layer_{i}", torch.nn.GELU())

    def forward(self, x):
        return self.net(x)


def train(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    x0, x1, species, dt = read_labeled(args.data)
    x, y = features(x0), targets(x0, x1)
    in_mean, in_std = x.mean(0), x.std(0)
    in_std[in_std == 0] = 1.0
    t_mean, t_std = y.mean(0), y.std(0)
    t_std[t_std == 0] = 1.0
    xn = torch.tensor((x - in_mean) / in_std, dtype=torch.float32)
    yn = torch.tensor((y - t_mean) / t_std, dtype=torch.float32)
    widths = [x.shape[1]] + [int(h) for h in args.hidden.split(",")] + [y.shape[1]]
    model = NN_MLP(widths)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * math.ceil(len(xn) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=args.lr * 0.01)
    start = time.time()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xn))
        total = 0.0
        for i in range(0, len(xn), args.batch):
            idx = perm[i : i + args.batch]
            loss = torch.nn.functional.l1_loss(model(xn[idx]), yn[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % max(1, args.epochs // 10) == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}/{args.epochs} train L1 {total / len(xn):.4e} ({time.time() - start:.0f} s)")
    params = sum(p.numel() for p in model.parameters())
    torch.save(
        {
            "net": model.state_dict(),
            "data_in_mean": in_mean,
            "data_in_std": in_std,
            "data_target_mean": t_mean,
            "data_target_std": t_std,
        },
        args.output,
    )
    print(json.dumps({"widths": widths, "parameters": params, "rows": len(xn), "dt_s": dt, "species": species,
                      "seconds": round(time.time() - start, 1), "seed": args.seed}))


def load(path):
    try:
        return torch.load(path, weights_only=True), True
    except Exception:
        # numpy statistics (DFODE-kit's own files) need the full unpickler; only for files
        # this script wrote.
        return torch.load(path, weights_only=False), False


def contract_step(ck, x0):
    """DeepFlame's inference: the next mass fractions of the first ns - 1 species."""
    state = ck["net"]
    n_layers = len([k for k in state if k.endswith(".weight")])
    widths = [state["net.linear_layer_0.weight"].shape[1]] + [
        state[f"net.linear_layer_{k}.weight"].shape[0] for k in range(n_layers)
    ]
    model = NN_MLP(widths)
    model.load_state_dict(state)
    stat = {k: np.asarray(ck[k], dtype=np.float64) for k in
            ["data_in_mean", "data_in_std", "data_target_mean", "data_target_std"]}
    xn = (features(x0) - stat["data_in_mean"]) / stat["data_in_std"]
    with torch.no_grad():
        o = model(torch.tensor(xn, dtype=torch.float32)).double().numpy()
    y = o * stat["data_target_std"] + stat["data_target_mean"] + bct(x0[:, 2:-1])
    nxt = (LAMBDA * y + 1.0) ** (1.0 / LAMBDA)
    nxt = nxt / nxt.sum(1, keepdims=True) * (1.0 - x0[:, -1:])
    return model, widths, stat, o, nxt


def read_fields(path):
    with h5py.File(path, "r") as f:
        names = sorted(f["scalar_fields"].keys())
        return names, {n: f["scalar_fields"][n][...] for n in names}


def compare(args):
    ck, _ = load(args.checkpoint)
    names, states = read_fields(args.input)
    _, ours = read_fields(args.predicted)
    x0 = np.concatenate([states[n] for n in names])
    mine = np.concatenate([ours[n] for n in names])
    _, _, _, _, nxt = contract_step(ck, x0)
    change = np.abs(nxt - x0[:, 2:-1]).max(0)
    diff = np.abs(mine[:, 2:-1] - nxt).max(0)
    # Species that do not change (an absent AR: values ~1e-40 either way) are not compared.
    ratio = np.where(change > 1e-20, diff / np.where(change > 1e-20, change, 1.0), 0.0)
    print(json.dumps({"states": len(x0), "max_relative_difference": float(ratio.max()),
                      "max_abs_difference": float(diff.max()),
                      "per_species": [{"relative": float(r), "abs": float(d), "largest_change": float(c)}
                                      for r, d, c in zip(ratio, diff, change)]}, indent=1))


def judge(args):
    torch.set_num_threads(args.threads)
    x0, x1, species, _ = read_labeled(args.data)
    out = {"data": args.data, "rows": len(x0), "models": []}
    for path in args.checkpoint:
        ck, weights_only = load(path)
        model, widths, stat, o, nxt = contract_step(ck, x0)
        yn = (targets(x0, x1) - stat["data_target_mean"]) / stat["data_target_std"]
        rmse = np.sqrt(((nxt - x1[:, 2:-1]) ** 2).mean(0))
        scale = np.abs(x1[:, 2:-1] - x0[:, 2:-1]).max(0)
        rel = np.where(scale > 0, rmse / np.where(scale > 0, scale, 1.0), 0.0)
        moving = scale > 0
        out["models"].append({
            "checkpoint": path,
            "loaded_with_weights_only": weights_only,
            "widths": widths,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "normalized_l1": float(np.abs(o - yn).mean()),
            "mean_relative_rmse": float(rel[moving].mean()),
            "species": [{"species": s, "rmse": float(r), "max_abs_change": float(m), "relative": float(q)}
                        for s, r, m, q in zip(species[:-1], rmse, scale, rel)],
        })
    if len(out["models"]) > 1:
        base = out["models"][0]
        for m in out["models"][1:]:
            m["relative_rmse_vs_first"] = m["mean_relative_rmse"] / base["mean_relative_rmse"]
            m["parameter_share_vs_first"] = m["parameters"] / base["parameters"]
    print(json.dumps(out, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--output", required=True)
    t.add_argument("--hidden", default="400,400,400,400")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--batch", type=int, default=1024)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    j = sub.add_parser("judge")
    j.add_argument("--data", required=True)
    j.add_argument("--checkpoint", nargs="+", required=True)
    j.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("compare")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--predicted", required=True)
    a = p.parse_args()
    {"train": train, "judge": judge, "compare": compare}[a.cmd](a)


if __name__ == "__main__":
    main()
