"""Cost of dynamic delays in Brian2: the same network with static and with dynamic delays.

1000 LIF neurons x 100 synapses each from 1000 Poisson sources (10 Hz), delays 0-10 ms, 1 s at dt 0.1 ms.
Both versions run the same synaptic code, which moves a synapse's delay variable `lag` by 0.1 ms at each
postsynaptic spike; only the dynamic version lets that change the delays during the run (emission-time
queue, brian_models/dynamic_delays.py). Prints wall times of Brian2 runs (build included, cython cache warm)
and the ratio dynamic / static per target, measured side by side in one process (best of `--repeats`).

    python bench/dynamic_delays.py [--targets numpy cython] [--repeats 2]
"""
import argparse
import time

import numpy as np

from bridge.description import Network, Population, PoissonTrains, Projection, RunSettings, Simulation, SynapseModel
from bridge.library import lif


def simulation(mode, n=1000, fan_in=100, seed=0):
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n * fan_in)
    j = np.repeat(np.arange(n), fan_in)
    lag = np.round(rng.uniform(0, 10, len(i)), 1) * 1e-3
    synapse = SynapseModel("w : amp\nlag : second", on_pre="I_syn_post += w",
                           on_post="lag = clip(lag + 0.1*ms, 0*ms, 10*ms)")
    delays = {"delays": lag} if mode == "static" else {"delay_mode": "dynamic", "delay_variable": "lag",
                                                        "delay_overflow": "clip"}
    projection = Projection("input", "poisson", "neurons", synapse, i=i, j=j, max_delay="10*ms",
                            values={"w": rng.uniform(0, 0.2e-9, len(i)), "lag": lag}, **delays)
    network = Network((Population("neurons", lif(), n, initial={"v": "-70*mV"}),),
                      (PoissonTrains("poisson", n, "10*Hz", seed=seed),), (), (projection,))
    return Simulation(network, RunSettings("1*second"))


def main():
    from brian_models.network import run

    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", nargs="+", default=["numpy", "cython"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    simulations = {mode: simulation(mode) for mode in ("static", "dynamic")}
    for target in args.targets:
        seconds, spikes = {}, {}
        for mode, sim in simulations.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                record = run(sim, target=target)
                times.append(time.perf_counter() - start)
            seconds[mode], spikes[mode] = min(times), record.count("neurons")
        print(f"{target:7s} static {seconds['static']:6.2f} s ({spikes['static']} spikes)  dynamic "
              f"{seconds['dynamic']:6.2f} s ({spikes['dynamic']} spikes)  ratio {seconds['dynamic'] / seconds['static']:.2f}")


if __name__ == "__main__":
    main()
