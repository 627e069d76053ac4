"""Scripted experiments: `spikebridge list`, `spikebridge run NAME`. Each is an importable module with
run(out, seed, quick, device, ...) -> results dict (also written to OUT/results.json with PNGs) and
summary(results) -> one screen of text."""
import importlib

EXPERIMENTS = {"delay-circuit": ("experiments.delay_circuit",
                                 "seed 003's inhibitory delay-adjustment circuit, dynamic delays, both backends")}


def load(name):
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name][0])
