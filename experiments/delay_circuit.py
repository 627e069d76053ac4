"""Experiment `delay-circuit`: seed 003's inhibitory delay-adjustment circuit with delays that change during
the run, in Brian2 and torch.

Demo: one pattern whose plastic copy leads the reference by a known offset, run in both backends as the seed
wrote the circuit and as changed here; are spikes and delay trajectories identical, which delay does the
circuit learn, how long does it take. Sweep: random patterns and offsets (torch, batched), the success rate
of the seed's circuit, of each change added in turn, and of the one-period wrap of earlier versions, with a
few trials of each re-run in Brian2 to confirm identical delay trajectories.
"""
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bridge.app import files  # noqa: E402
from bridge.library import delay_circuit as circuit  # noqa: E402
from bridge.library.delay_circuit import CircuitParameters  # noqa: E402
from bridge.app.paired import paired_run  # noqa: E402
from bridge.plan import lower  # noqa: E402
from experiments import save_figure  # noqa: E402
import torch_models  # noqa: E402

# The seed's circuit, the changes of bridge/library/delay_circuit.py added one at a time, and the one-period wrap.
VARIANTS = {"seed": circuit.SEED_CIRCUIT,
            "+ yield_by_index": {**circuit.SEED_CIRCUIT, "rule": "yield_by_index"},
            "+ reflect": {"rule": "yield_by_index", "delay_range": "reflect", "initial_delays": "consecutive"},
            "+ spread (default)": {},
            "default, wrap": {"delay_range": "wrap"}}
DEMO_VARIANTS = ("seed", "+ spread (default)")


def delays_in_force(d_trace, params):
    """The delay (ms) each neuron's plastic input has at every step: its variable d by the plastic
    projection's overflow rule."""
    plastic = lower(circuit.simulation(params)).projections["plastic_input"]
    return plastic.rule.steps(np.asarray(d_trace)) * params.dt


def aligning_delays(params):
    """Delays on the delay-step grid within one period that make the most plastic spikes coincide with
    reference spikes (the aligning delay, and its equivalents when the pattern repeats within itself). Adding
    whole periods gives equivalent delays."""
    period_steps = round(params.period / params.dt)
    pattern = np.zeros(period_steps, dtype=int)
    pattern[np.round(params.pattern() / params.dt).astype(int) % period_steps] = 1
    reference = np.roll(pattern, round(params.aligning_delay / params.dt))
    candidates = np.arange(params.positions) * params.delay_step
    overlap = np.array([np.dot(np.roll(pattern, round(c / params.dt)), reference) for c in candidates])
    return candidates[overlap == overlap.max()]


def _circle_distance(delays, targets, circle):
    gap = np.abs(np.asarray(delays, dtype=float)[..., None] - np.asarray(targets)[None, :]) % circle
    return np.minimum(gap, circle - gap).min(axis=-1)


def outcome(neurons, steps, d_trace, params, final_fraction=0.2):
    """What the circuit learned. A win: a spike after which the neuron keeps its delay (it was not made to
    yield). The learned delay: the delay (modulo the period) most wins in the final `final_fraction` of the
    run were fired with. Settled: every win in that stretch was fired within one delay step of it; settle
    time: the first win of the final stretch of such wins. Success: settled, and the learned delay within
    one delay step of an aligning delay."""
    delays = delays_in_force(d_trace, params)
    n_steps, step = len(delays), params.delay_step
    fired_with = delays[steps, neurons]
    won = delays[np.minimum(steps + 1, n_steps - 1), neurons] == fired_with
    win_steps, win_delays = steps[won], fired_with[won] % params.period
    late = win_delays[win_steps >= (1 - final_fraction) * n_steps]
    aligning = aligning_delays(params)
    result = {"aligning_delays_ms": aligning.tolist(), "final_delays_ms": delays[-1].round(6).tolist(),
              "wins": int(won.sum()), "settled": False, "learned_delay_ms": None, "error_ms": None,
              "settle_time_ms": None, "success": False}
    if len(late) == 0:
        return result
    values, counts = np.unique(late.round(6), return_counts=True)
    learned = values[np.argmax(counts)]
    near = _circle_distance(win_delays, [learned], params.period) <= step + 1e-9
    settled = bool(np.all(near[len(win_delays) - len(late):]))
    first = np.nonzero(~near)[0][-1] + 1 if not np.all(near) else 0
    error = float(_circle_distance(learned, aligning, params.period))
    result.update(learned_delay_ms=float(learned), error_ms=round(error, 6), settled=settled,
                  settle_time_ms=round(float(win_steps[first] * params.dt), 6) if settled else None,
                  success=settled and error <= step + 1e-9)
    return result


def demo(params, target="numpy", device=None):
    """Both backends on one configuration: (result dict, brian_record, torch_record)."""
    brian_record, torch_record, report = paired_run(circuit.simulation(params), target=target, device=device)
    neurons, steps = brian_record.spikes["neurons"]
    result = {"offset_ms": params.offset, "pattern_ms": params.pattern().tolist(),
              "spikes": brian_record.count("neurons"), "identical_spikes": report.identical,
              "identical_delay_trajectories": bool(np.array_equal(brian_record.traces["neurons.d"],
                                                                  torch_record.traces["neurons.d"])),
              **outcome(neurons, steps, brian_record.traces["neurons.d"], params)}
    return result, brian_record, torch_record


def sweep_configurations(seed, trials, **common):
    """Random patterns and offsets (whole ms within one period), seeded."""
    rng = np.random.default_rng(seed)
    base = CircuitParameters(**common)
    return [CircuitParameters(**{**common, "pattern_seed": int(rng.integers(2**31)),
                                 "offset": float(rng.integers(0, base.period))}) for _ in range(trials)]


def sweep_torch(configurations, device=None, progress=True):
    """All configurations in one torch batch (they differ only in their input spikes): outcomes."""
    plans = [lower(circuit.simulation(p)) for p in configurations]
    module = torch_models.compile(plans[0], "stepwise", "float64", device)
    inputs = {source: torch.as_tensor(np.stack([plan.sources[source].raster(plan.n_steps) for plan in plans]),
                                      device=device)
              for source in ("plastic", "reference")}
    with torch.no_grad():
        out = module(inputs=inputs, record=["neurons.d"], progress=progress)
    outcomes = []
    for b, params in enumerate(configurations):
        record = out.record(b)
        neurons, steps = record.spikes["neurons"]
        outcomes.append({"pattern_seed": params.pattern_seed, "offset_ms": params.offset,
                         **outcome(neurons, steps, record.traces["neurons.d"], params)})
    return outcomes, out


def success_rates(seeds, trials, n_neurons=2, variant=None, progress=False):
    """The success rate of one variant (VARIANTS, default: the default circuit) in sweeps of `trials` random
    configurations for each sweep seed, and the outcomes of the failed trials."""
    rates, failures = [], []
    for seed in tqdm(seeds, desc="sweeps", disable=not progress):
        configurations = sweep_configurations(seed, trials, n_neurons=n_neurons, **VARIANTS.get(variant, {}))
        outcomes, _ = sweep_torch(configurations, progress=False)
        rates.append(float(np.mean([o["success"] for o in outcomes])))
        failures += [{"pattern_ms": p.pattern().tolist(), **o} for p, o in zip(configurations, outcomes)
                     if not o["success"]]
    return rates, failures


def brian_agrees(params, torch_d_trace):
    """Re-run one sweep trial in Brian2: is its delay trajectory identical to torch's?"""
    from brian_models.network import run as run_brian
    return bool(np.array_equal(run_brian(circuit.simulation(params)).traces["neurons.d"], torch_d_trace))


def run(out="results/delay_circuit", seed=0, quick=False, device=None, n_neurons=2, more_neurons=4, trials=None,
        repetitions=None, brian_checks=None, progress=True):
    """The experiment; returns the results dict and writes results.json and PNGs into `out`. The sweep runs
    every variant with `n_neurons`, and the default circuit once more with `more_neurons`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    repetitions = repetitions or (20 if quick else 80)
    trials = trials or (4 if quick else 100)
    brian_checks = (1 if quick else 2) if brian_checks is None else brian_checks
    started = time.time()
    results = {"experiment": "delay-circuit", "seed": seed, "quick": quick,
               "parameters": {"n_neurons": n_neurons, "repetitions": repetitions, "trials": trials,
                              "defaults": vars(CircuitParameters()), "variants": VARIANTS},
               "versions": files.versions(), "demo": {}, "sweep": {}}
    records = {}
    for name in tqdm(DEMO_VARIANTS, desc="demo", disable=not progress):
        params = CircuitParameters(n_neurons=n_neurons, offset=5.0, pattern_seed=seed, repetitions=repetitions,
                                   **VARIANTS[name])
        results["demo"][name], brian_record, torch_record = demo(params, device=device)
        records[name] = (params, brian_record, torch_record)
    sweeps = [(name, n_neurons, variant) for name, variant in VARIANTS.items()]
    sweeps.append((f"default, {more_neurons} neurons", more_neurons, {}))
    for name, neurons, variant in sweeps:
        configurations = sweep_configurations(seed, trials, n_neurons=neurons, repetitions=repetitions, **variant)
        outcomes, out_torch = sweep_torch(configurations, device=device, progress=progress)
        checked = [brian_agrees(configurations[b], out_torch.record(b).traces["neurons.d"])
                   for b in tqdm(range(min(brian_checks, trials)), desc=f"Brian2 check ({name})",
                                 disable=not progress)]
        results["sweep"][name] = {"success_rate": float(np.mean([o["success"] for o in outcomes])),
                                  "settled_rate": float(np.mean([o["settled"] for o in outcomes])),
                                  "brian2_identical_delay_trajectories": f"{sum(checked)}/{len(checked)}",
                                  "trials": outcomes}
    results["seconds"] = round(time.time() - started, 1)
    files.write_json(out / "results.json", results)
    _plot_delays(records, out / "delay_trajectories.png")
    _plot_states(records, out / "v_and_thresholds.png")
    _plot_rasters(records, out / "rasters.png")
    _plot_sweep(results["sweep"], out / "sweep.png")
    return results


def summary(results):
    lines = [f"delay-circuit ({'quick' if results['quick'] else 'full'}, seed {results['seed']}, "
             f"{results['parameters']['n_neurons']} neurons, {results['parameters']['repetitions']} repetitions)"]
    for name, r in results["demo"].items():
        lines.append(f"  demo, {name:20s} spikes {r['spikes']:4d}  identical spikes {r['identical_spikes']}, "
                     f"identical delay trajectories {r['identical_delay_trajectories']}")
        lines.append(f"      aligning delay {r['aligning_delays_ms']} ms; learned {r['learned_delay_ms']} ms "
                     f"(settled {r['settled']}, at {r['settle_time_ms']} ms); final delays {r['final_delays_ms']}")
    for name, r in results["sweep"].items():
        lines.append(f"  sweep, {name:20s} success {r['success_rate']:.0%} of {len(r['trials'])} "
                     f"(settled {r['settled_rate']:.0%}); Brian2 re-runs identical {r['brian2_identical_delay_trajectories']}")
    lines.append(f"  {results['seconds']} s")
    return "\n".join(lines)


def _time_ms(record):
    return np.arange(record.n_steps) * record.dt * 1e3


def _variant_axes(records, height):
    """One row of axes per variant, sharing the time axis."""
    fig, axes = plt.subplots(len(records), 1, figsize=(10, height * len(records)), sharex=True, squeeze=False)
    return fig, zip(axes[:, 0], records.items()), axes[-1, 0]


def _save(fig, last_axes, path):
    last_axes.set_xlabel("time (ms)")
    save_figure(fig, path)


def _plot_delays(records, path):
    fig, rows, last = _variant_axes(records, 3)
    for ax, (name, (params, brian_record, torch_record)) in rows:
        for k in range(params.n_neurons):
            for record, style in ((brian_record, dict(lw=2.5, alpha=0.5)), (torch_record, dict(lw=1, ls="--"))):
                delays = delays_in_force(record.traces["neurons.d"], params)[:, k]
                ax.plot(_time_ms(record), delays, color=f"C{k}", **style,
                        label=f"neuron {k} ({'Brian2' if record is brian_record else 'torch'})")
        top = max(ax.get_ylim()[1], params.period)
        for aligning in aligning_delays(params):
            for equivalent in np.arange(aligning, top, params.period):
                ax.axhline(equivalent, color="k", lw=0.8, ls=":")
        ax.set_ylabel("delay in force (ms)")
        ax.set_title(f"{name}: dotted = aligning delay (and whole periods more)")
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    _save(fig, last, path)


def _plot_states(records, path):
    fig, rows, last = _variant_axes(records, 3)
    for ax, (name, (params, brian_record, _)) in rows:
        for k in range(params.n_neurons):
            ax.plot(_time_ms(brian_record), brian_record.traces["neurons.v"][:, k], color=f"C{k}", lw=1,
                    label=f"v, neuron {k}")
            ax.plot(_time_ms(brian_record), brian_record.traces["neurons.v_th"][:, k], color=f"C{k}", lw=1, ls=":",
                    label=f"threshold, neuron {k}")
        ax.set_ylabel("v, v_th")
        ax.set_title(f"{name} (Brian2)")
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    _save(fig, last, path)


def _plot_rasters(records, path):
    fig, rows, last = _variant_axes(records, 2.5)
    for ax, (name, (params, brian_record, torch_record)) in rows:
        ax.eventplot([params.plastic_times(), params.plastic_times() + params.offset], lineoffsets=[-2, -1],
                     linelengths=0.8, colors=["tab:green", "tab:gray"])
        for record, style in ((brian_record, dict(marker="|", s=80, color="tab:blue")),
                              (torch_record, dict(marker="x", s=12, color="tab:red"))):
            neurons, steps = record.spikes["neurons"]
            ax.scatter(steps * record.dt * 1e3, neurons, label=record.backend, **style)
        ax.set_yticks([-2, -1, *range(params.n_neurons)], ["plastic", "reference",
                                                          *[f"neuron {k}" for k in range(params.n_neurons)]])
        ax.set_title(name)
        ax.legend(fontsize=7, loc="upper right")
    _save(fig, last, path)


def _plot_sweep(sweep, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(sweep)
    left.barh(names, [100 * sweep[n]["success_rate"] for n in names], color="tab:blue")
    left.axvline(95, color="k", ls=":", lw=0.8)
    left.invert_yaxis()
    left.set_xlabel("success (% of trials)")
    left.set_title("aligning delay learned (±1 step)")
    for name in DEMO_VARIANTS:
        times = [t["settle_time_ms"] for t in sweep[name]["trials"] if t["success"]]
        right.hist(times, bins=15, alpha=0.6, label=name)
    right.set_xlabel("settle time (ms)")
    right.set_ylabel("trials")
    right.legend(fontsize=8)
    save_figure(fig, path)
