#!/usr/bin/env python3
"""Writes data/reference/cantera_rates.json: Cantera's rates for a few states of each shipped
mechanism, used by the kinetics tests as an independent reference.

Needs `pip install cantera` (3.2 was used); not needed to build or test the project.
States per mechanism: fresh stoichiometric fuel/air at 1200 K and 1 atm, a mid-ignition state
(the first state of a Cantera constant-pressure ignition from 1200 K whose T exceeds 1600 K),
and a fresh mixture at 20 atm and 1000 K.
"""
import json
import sys

import cantera as ct

MECHS = {"h2o2": "H2:1", "drm19": "CH4:1", "gri30": "CH4:1"}


def snapshot(gas, label):
    return {
        "label": label,
        "T": gas.T,
        "P": gas.P,
        "Y": list(gas.Y),
        "net_production_rates": list(gas.net_production_rates),
        "dTdt": -float(gas.partial_molar_enthalpies @ gas.net_production_rates) / (gas.density * gas.cp_mass),
        "forward_rate_constants": list(gas.forward_rate_constants),
        "reverse_rate_constants": list(gas.reverse_rate_constants),
        "net_rates_of_progress": list(gas.net_rates_of_progress),
        "density": gas.density,
        "cp_mass": gas.cp_mass,
        "enthalpy_mass": gas.enthalpy_mass,
    }


def ignitions(name, fuel):
    """Ignition delays (time of max dT/dt, parabola-refined) at tight tolerances."""
    out = []
    for t0 in ([1000.0, 1200.0] if name == "h2o2" else [1400.0, 1650.0]):
        gas = ct.Solution(f"data/mechanisms/{name}.yaml")
        gas.set_equivalence_ratio(1.0, fuel, "O2:1,N2:3.76")
        gas.TP = t0, ct.one_atm
        reactor = ct.IdealGasConstPressureReactor(gas, clone=False)
        net = ct.ReactorNet([reactor])
        net.rtol, net.atol = 1e-12, 1e-20
        ts, rates = [], []
        def dtdt():
            g = reactor.phase
            return -float(g.partial_molar_enthalpies @ g.net_production_rates) / (g.density * g.cp_mass)
        ts.append(0.0)
        rates.append(dtdt())
        while net.time < 1.0:
            net.step()
            ts.append(net.time)
            rates.append(dtdt())
            if reactor.T > t0 + 100 and rates[-1] < 1e-4 * max(rates):
                break
        i = max(range(len(rates)), key=lambda k: rates[k])
        x0, x1, x2 = ts[i - 1], ts[i], ts[i + 1]
        y0, y1, y2 = rates[i - 1], rates[i], rates[i + 1]
        d01, d12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
        a = (d12 - d01) / (x2 - x0)
        b = d01 - a * (x0 + x1)
        out.append({"T0": t0, "P": ct.one_atm, "phi": 1.0, "ignition_delay": -b / (2 * a), "final_T": reactor.T})
    return out


def main(out):
    result = {"cantera_version": ct.__version__, "mechanisms": {}}
    for name, fuel in MECHS.items():
        gas = ct.Solution(f"data/mechanisms/{name}.yaml")
        states = []
        gas.set_equivalence_ratio(1.0, fuel, "O2:1,N2:3.76")
        gas.TP = 1200.0, ct.one_atm
        states.append(snapshot(gas, "fresh 1200 K, 1 atm"))
        reactor = ct.IdealGasConstPressureReactor(gas, clone=False)
        net = ct.ReactorNet([reactor])
        net.rtol, net.atol = 1e-10, 1e-16
        while reactor.T < 1600.0 and net.time < 10.0:
            net.step()
        states.append(snapshot(reactor.phase, "mid-ignition"))
        gas = ct.Solution(f"data/mechanisms/{name}.yaml")
        gas.set_equivalence_ratio(0.7, fuel, "O2:1,N2:3.76")
        gas.TP = 1000.0, 20 * ct.one_atm
        states.append(snapshot(gas, "fresh 1000 K, 20 atm, phi 0.7"))
        result["mechanisms"][name] = {"species": gas.species_names, "states": states, "ignitions": ignitions(name, fuel)}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/reference/cantera_rates.json")
