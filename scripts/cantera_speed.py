#!/usr/bin/env python3
"""Cantera's time to advance one state by dt = 1e-6 s (fresh reactor per state), on the same
kind of states as the Rust benchmark: 32 states evenly in time over twice the ignition delay of
a stoichiometric fuel/air ignition at 1 atm (h2o2 from 1200 K, drm19 and gri30 from 1650 K).

Needs `pip install cantera`; prints microseconds per state for two tolerance pairs.
"""
import time

import cantera as ct
import numpy as np

CASES = [("h2o2", "H2:1", 1200.0), ("drm19", "CH4:1", 1650.0), ("gri30", "CH4:1", 1650.0)]


def states(name, fuel, t0, n=32):
    gas = ct.Solution(f"data/mechanisms/{name}.yaml")
    gas.set_equivalence_ratio(1.0, fuel, "O2:1,N2:3.76")
    gas.TP = t0, ct.one_atm
    r = ct.IdealGasConstPressureReactor(gas, clone=False)
    net = ct.ReactorNet([r])
    net.rtol, net.atol = 1e-10, 1e-16
    ts, ys, rates = [0.0], [gas.state.copy()], [0.0]
    while net.time < 1.0:
        net.step()
        g = r.phase
        ts.append(net.time)
        ys.append(g.state.copy())
        rates.append(-float(g.partial_molar_enthalpies @ g.net_production_rates) / (g.density * g.cp_mass))
        if r.T > t0 + 100 and rates[-1] < 1e-4 * max(rates):
            break
    tau = ts[int(np.argmax(rates))]
    out = []
    for s in range(n):
        target = 2 * tau * s / (n - 1)
        i = max(k for k in range(len(ts)) if ts[k] <= target)
        out.append(ys[i])
    return out


def main():
    for name, fuel, t0 in CASES:
        gas = ct.Solution(f"data/mechanisms/{name}.yaml")
        sts = states(name, fuel, t0)
        for rtol, atol in [(1e-9, 1e-15), (1e-6, 1e-10)]:
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for st in sts:
                    gas.state = st
                    r = ct.IdealGasConstPressureReactor(gas, clone=False)
                    net = ct.ReactorNet([r])
                    net.rtol, net.atol = rtol, atol
                    net.advance(1e-6)
                best = min(best, (time.perf_counter() - start) / len(sts))
            print(f"{name} rtol {rtol:g} atol {atol:g}: {best * 1e6:.1f} us/state (Cantera {ct.__version__})")


if __name__ == "__main__":
    main()
