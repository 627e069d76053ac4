"""Spike-by-spike comparison of two Records in a tolerance class.

- exact (float64, same dt, deterministic input): identical (neuron, step) spike sets, and every recorded trace
  within TRACE_RTOL of the trace's largest magnitude.
- float32: at least FLOAT32_MATCHED of the spikes matched within ±k steps, and every divergence explained by a
  threshold crossing closer than NEAR_THRESHOLD_EPS float eps (or as following from an earlier divergence).
- stochastic (independent noise in each backend): over several seeds, every population's mean firing rate and
  mean CV of interspike intervals within STOCHASTIC_RTOL of Brian2's, or, where the samples are too small to
  say that, a difference that the two-sample t-test over seeds does not find at significance STOCHASTIC_P
  (`compare_statistics`).
The report names the first divergence: step, neuron, how far torch's state was from threshold."""
import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import t as student_t
from scipy.stats import ttest_ind_from_stats

from bridge.neo_records import spike_trains

TRACE_RTOL = 1e-9          # exact class: traces within this, relative to the trace's largest magnitude
FLOAT32_MATCHED = 0.99     # float32 class: fraction of spikes matched within ±k steps
NEAR_THRESHOLD_EPS = 1e3   # a crossing counts as "near threshold" within this many float eps of the state scale
STOCHASTIC_RTOL = 0.05     # stochastic class: mean rate and CV over seeds within this, relative to Brian2's
STOCHASTIC_P = 1e-3        # ... or their difference not significant at this level (t-test over seeds; small samples)
STOCHASTIC_MIN_SEEDS = 5
CV_MIN_TRAINS = 20         # a mean CV needs this many spike trains with at least 3 spikes (else not compared)


@dataclass
class Divergence:
    population: str
    neuron: int
    step: int
    only_in: str             # the backend that spiked
    margin: float | None     # torch's distance past threshold there (negative: below)
    explanation: str


@dataclass
class Report:
    tolerance_class: str     # "exact" or "float32"
    k: int
    counts: dict             # population -> {backend: spike count}
    identical: bool
    matched_fraction: dict   # population -> fraction of spikes matched within ±k steps
    van_rossum: dict         # population -> mean van Rossum distance per neuron (tau 10 ms)
    traces: dict             # "pop.var" -> {"max_abs": .., "max_rel": ..}
    first_divergence: Divergence | None
    divergences: list = field(default_factory=list)

    @property
    def passed(self):
        if self.tolerance_class == "exact":
            return self.identical and all(t["max_rel"] <= TRACE_RTOL for t in self.traces.values())
        return all(f >= FLOAT32_MATCHED for f in self.matched_fraction.values()) and \
            all(d.explanation != "unexplained" for d in self.divergences)

    def to_dict(self):
        return {**asdict(self), "passed": self.passed}

    def text(self):
        lines = [f"tolerance class: {self.tolerance_class}   identical spikes: {'yes' if self.identical else 'no'}"
                 f"   passed: {'yes' if self.passed else 'NO'}"]
        for pop, counts in self.counts.items():
            lines.append(f"  {pop}: spikes {counts}, matched within ±{self.k} steps "
                         f"{100 * self.matched_fraction[pop]:.2f} %, van Rossum distance {self.van_rossum[pop]:.3g}")
        for key, t in self.traces.items():
            lines.append(f"  {key}: max |Δ| {t['max_abs']:.3g} (SI), relative {t['max_rel']:.3g}")
        if self.first_divergence:
            d = self.first_divergence
            margin = f"torch margin past threshold {d.margin:.3g}" if d.margin is not None else "no margin recorded"
            lines.append(f"  first divergence: step {d.step}, {d.population}[{d.neuron}] spiked only in {d.only_in}; "
                         f"{margin}: {d.explanation}")
        if len(self.divergences) > 1:
            kinds = Counter(d.explanation.split(":")[0] for d in self.divergences)
            lines.append(f"  {len(self.divergences)} unmatched spikes: " +
                         ", ".join(f"{n} {kind}" for kind, n in kinds.items()))
        return "\n".join(lines)


def _match(a_steps, b_steps, k):
    """Greedy one-to-one matching of two sorted step lists within ±k; returns unmatched of a and of b."""
    ia = ib = 0
    unmatched_a, unmatched_b = [], []
    while ia < len(a_steps) and ib < len(b_steps):
        if abs(a_steps[ia] - b_steps[ib]) <= k:
            ia, ib = ia + 1, ib + 1
        elif a_steps[ia] < b_steps[ib]:
            unmatched_a.append(a_steps[ia])
            ia += 1
        else:
            unmatched_b.append(b_steps[ib])
            ib += 1
    return unmatched_a + list(a_steps[ia:]), unmatched_b + list(b_steps[ib:])


def van_rossum(record_a, record_b, population, n, tau=10e-3):
    """The mean over neurons of Elephant's van Rossum distance, exponential kernel tau, the kernels' tails counted
    whole (its convention, van Rossum 2001: sqrt(Σ exp(-|a - b|/τ) over the pairs of each train's spikes, minus
    twice over the pairs between them), √2 times sqrt((1/τ)∫(f - g)² dt) of the filtered trains f, g)."""
    import quantities as pq
    from elephant.spike_train_dissimilarity import van_rossum_distance

    pairs = zip(spike_trains(record_a, population, n), spike_trains(record_b, population, n))
    return float(np.mean([van_rossum_distance([a, b], time_constant=tau * pq.s)[0, 1] for a, b in pairs]))


def _spike_steps(record, population, neuron):
    neurons, steps = record.spikes[population]
    return list(steps[neurons == neuron])


def _unmatched(reference, candidate, population, n, k):
    """(step, neuron, backend that spiked) of every spike without a partner within ±k steps."""
    events = []
    for neuron in range(n):
        only_ref, only_cand = _match(_spike_steps(reference, population, neuron),
                                     _spike_steps(candidate, population, neuron), k)
        events += [(int(s), neuron, reference.backend) for s in only_ref]
        events += [(int(s), neuron, candidate.backend) for s in only_cand]
    return sorted(events)


def _explain(events, population, margins, tolerance, network_first_step):
    """Each divergence traced to a near-threshold crossing or to an earlier divergence that reaches it:
    of the same neuron, or (when the population receives spikes from neurons) of the network."""
    result, diverged = [], set()
    for step, neuron, backend in events:
        margin = float(margins[step, neuron]) if margins is not None else None
        if margin is not None and abs(margin) <= tolerance:
            explanation = f"near threshold: |margin| {abs(margin):.3g} <= {tolerance:.3g} (float rounding)"
        elif neuron in diverged:
            explanation = "downstream: this neuron diverged earlier"
        elif network_first_step is not None and step > network_first_step:
            explanation = f"downstream: its input neurons diverged earlier (step {network_first_step})"
        else:
            explanation = "unexplained"
        result.append(Divergence(population, neuron, step, backend, margin, explanation))
        diverged.add(neuron)
    return result


def compare(reference, candidate, sizes, tolerance_class="exact", k=1, eps=np.finfo(np.float64).eps,
            neuron_driven=()):
    """Compare `candidate` (torch, with threshold margins) to `reference` (Brian2). sizes: population -> n;
    neuron_driven: populations that receive spikes from neurons (so a divergence can reach them).

    Every spike that is not identical (k = 0) is a divergence and gets an explanation; the matched
    fraction counts spikes with a partner within ±k steps."""
    counts, matched, distances, divergences = {}, {}, {}, []
    exact_events = {pop: _unmatched(reference, candidate, pop, n, 0) for pop, n in sizes.items()}
    steps = [e[0] for pop in neuron_driven for e in exact_events.get(pop, [])] + \
        [e[0] for pop in sizes for e in exact_events[pop]]
    network_first_step = min(steps) if steps else None
    for pop, n in sizes.items():
        counts[pop] = {reference.backend: reference.count(pop), candidate.backend: candidate.count(pop)}
        unmatched = _unmatched(reference, candidate, pop, n, k)
        total = max(reference.count(pop), candidate.count(pop))
        matched[pop] = (reference.count(pop) - sum(1 for e in unmatched if e[2] == reference.backend)) / total \
            if total else 1.0
        margins = candidate.margins.get(pop)
        tolerance = NEAR_THRESHOLD_EPS * eps * (np.abs(margins).max() if margins is not None else 1.0)
        divergences += _explain(exact_events[pop], pop, margins, tolerance,
                                network_first_step if pop in neuron_driven else None)
        distances[pop] = van_rossum(reference, candidate, pop, n)
    identical = all(reference.spike_set(p) == candidate.spike_set(p) for p in sizes)
    traces = {}
    for key, ref in reference.traces.items():
        delta = np.abs(ref - candidate.traces[key])
        scale = np.abs(ref).max()
        largest = float(delta.max())  # relative to a reference of zeros: 0 where equal, else inf
        traces[key] = {"max_abs": largest, "max_rel": largest / scale if scale else math.inf if largest else 0.0}
    divergences.sort(key=lambda d: d.step)
    return Report(tolerance_class, k, counts, identical, matched, distances, traces,
                  divergences[0] if divergences else None, divergences)


def spike_statistics(records, population, n):
    """{'rate': mean firing rate (Hz), 'cv': mean coefficient of variation of the interspike intervals (both by
    Elephant) of the neurons with at least 3 spikes (None when fewer than CV_MIN_TRAINS such trains), 'trains':
    their number, 'rate_se' and 'cv_se': the standard errors of both, from their spread over the records
    ('rate_samples' and 'cv_samples' records, those with trains for the CV)} of a population over records (one
    per seed, of equal length). The spread over seeds, not a Poisson count's, holds what neurons share
    (a network's synchronous fluctuations)."""
    from elephant.statistics import cv, isi, mean_firing_rate

    rates, cvs, per_record = [], [], []
    for record in records:
        trains = spike_trains(record, population, n)
        rates.append(float(np.mean([mean_firing_rate(train).rescale("Hz") for train in trains])))
        record_cvs = [float(cv(isi(train))) for train in trains if len(train) >= 3]
        cvs += record_cvs
        per_record += [np.mean(record_cvs)] if record_cvs else []
    compared = len(cvs) >= CV_MIN_TRAINS
    return {"rate": float(np.mean(rates)), "rate_se": _standard_error(rates), "rate_samples": len(rates),
            "cv": float(np.mean(cvs)) if compared else None, "cv_se": _standard_error(per_record) if compared else None,
            "cv_samples": len(per_record), "trains": len(cvs)}


def _standard_error(values):
    """The standard error of the mean of values (one per seed); 0 for fewer than two."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


@dataclass
class StochasticReport:
    seeds: int
    statistics: dict         # population -> {backend: {'rate': Hz, 'cv': ...}}
    tolerance_class: str = "stochastic"

    def differences(self):
        """{(population, statistic): relative difference of torch's from Brian2's}."""
        return {(population, name): _relative(by_backend["brian2"][name], by_backend["torch"][name])
                for population, by_backend in self.statistics.items() for name in ("rate", "cv")}

    def t_tests(self):
        """{(population, statistic): (Student's t of the difference of torch's from Brian2's, the value it may
        reach at significance STOCHASTIC_P)}: the two-sample t-test over seeds, variances pooled (under the class's
        hypothesis both backends draw from one distribution); (0, inf) when either is not compared."""
        scores = {}
        for population, by_backend in self.statistics.items():
            for name in ("rate", "cv"):
                brian, torch = by_backend["brian2"], by_backend["torch"]
                samples = [stats[f"{name}_samples"] for stats in (brian, torch)]
                if brian[name] is None or torch[name] is None or sum(samples) < 3:
                    scores[(population, name)] = (0.0, np.inf)
                    continue
                spread = [stats[f"{name}_se"] * np.sqrt(n) for stats, n in zip((brian, torch), samples)]
                t_value = abs(ttest_ind_from_stats(brian[name], spread[0], samples[0], torch[name], spread[1],
                                                   samples[1]).statistic)
                scores[(population, name)] = (0.0 if np.isnan(t_value) else float(t_value),
                                              float(student_t.ppf(1 - STOCHASTIC_P / 2, sum(samples) - 2)))
        return scores

    @property
    def passed(self):
        scores = self.t_tests()
        return self.seeds >= STOCHASTIC_MIN_SEEDS and all(
            difference <= STOCHASTIC_RTOL or scores[key][0] <= scores[key][1] for key, difference in
            self.differences().items())

    def to_dict(self):
        return {"tolerance_class": self.tolerance_class, "seeds": self.seeds, "statistics": self.statistics,
                "relative_differences": {f"{pop}.{name}": d for (pop, name), d in self.differences().items()},
                "t_tests": {f"{pop}.{name}": {"t": t_value, "allowed": allowed}
                            for (pop, name), (t_value, allowed) in self.t_tests().items()},
                "passed": self.passed}

    def text(self):
        lines = [f"tolerance class: stochastic ({self.seeds} seeds, independent noise; rates and CV within "
                 f"{100 * STOCHASTIC_RTOL:g} %, or a difference not significant at p = {STOCHASTIC_P:g})   passed: "
                 f"{'yes' if self.passed else 'NO'}"]
        differences, scores = self.differences(), self.t_tests()
        for population, by_backend in self.statistics.items():
            for name in ("rate", "cv"):
                values = ", ".join(f"{backend} {stats[name]:.4g}" if stats[name] is not None else
                                   f"{backend}: {stats['trains']} trains of >= 3 spikes, too few to compare"
                                   for backend, stats in by_backend.items())
                score, allowed = scores[(population, name)]
                lines.append(f"  {population} {name}: {values} (relative difference "
                             f"{100 * differences[(population, name)]:.2f} %, t = {score:.2f} of {allowed:.2f} "
                             "allowed)")
        return "\n".join(lines)


def _relative(reference, value):
    """|value - reference| / |reference|; 0 when both are 0, or either None (too few spikes to say)."""
    if reference is None or value is None:
        return 0.0
    if not reference:
        return 0.0 if value == reference else float("inf")
    return abs(value - reference) / abs(reference)


def compare_statistics(references, candidates, sizes):
    """The stochastic class: Brian2 runs `references` and torch runs `candidates`, one per seed."""
    statistics = {population: {"brian2": spike_statistics(references, population, n),
                               "torch": spike_statistics(candidates, population, n)}
                  for population, n in sizes.items()}
    return StochasticReport(len(references), statistics)
