"""Paired runs of every library model: Brian2 and torch give identical spikes (float64, same dt)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.plan import lower
from bridge import library
from bridge.app.cli import main
from bridge.app.compare import FLOAT32_MATCHED
from brian_models import network as brian_network


def _check_scenario_inputs(simulation):
    """The scenario is what the acceptance asks for: 1 s at 0.1 ms, random delays spanning 0-20 ms."""
    assert simulation.run.n_steps == 10000 and simulation.dt == pytest.approx(1e-4)
    for proj in simulation.network.projections:
        steps = lower(simulation).projections[proj.name].delay_steps
        assert steps.min() <= 5 and steps.max() >= 190 and len(np.unique(steps)) > 50
        weights = proj.value_array("w", len(steps))
        assert np.std(weights) > 0


POISSON_DRIVEN = ("coincidence", "lif", "lif_euler", "penalty", "weighted_sum")
# one model per scenario (penalty_layer and graded_input are driven by the spiking_net scenario); the delay
# circuit's scenarios are cross-checked in test_delay_circuit.py
SCENARIOS = sorted({scenario: name for name, (_, scenario) in reversed(library.MODELS.items())
                    if name != "delay_circuit"}.values())


@pytest.mark.parametrize("name", SCENARIOS)
def test_library_model_identical_on_numpy(name, paired):
    simulation = library.scenario(name, seed=3)
    if name in POISSON_DRIVEN:
        _check_scenario_inputs(simulation)
    brian_record, torch_record, report = paired(simulation, target="numpy")
    assert sum(map(brian_record.count, brian_record.spikes)) >= (300 if name in POISSON_DRIVEN else 30)
    for pop in brian_record.spikes:
        assert brian_record.spike_set(pop) == torch_record.spike_set(pop)
        # Elephant's distance: the square root of sums that cancel to rounding (2^-19 for 8192 spikes of 64 neurons
        # on one CPU); one spike one step away adds 0.14 / n to the mean over n neurons
        assert report.van_rossum[pop] < 1e-5
    assert report.identical and report.first_divergence is None
    for key, trace in brian_record.traces.items():  # bitwise: numpy's formulas, its order of additions
        assert np.abs(trace).max() > 0
        assert np.array_equal(trace, torch_record.traces[key]), key


def test_every_readme_model_is_registered():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## Library models")[1].split("\n\n")[1]
    listed = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert listed == set(library.MODELS)


@pytest.mark.cython
@pytest.mark.parametrize("name, seed, target", [
    ("coincidence", 5, "cython"), pytest.param("penalty", 1, "cpp_standalone", marks=pytest.mark.slow)])
def test_library_model_identical_on_compiled_targets(name, seed, target, paired):
    simulation = library.scenario(name, seed=seed, duration="500*ms")  # 1 s of it on numpy, above
    brian_record, _, report = paired(simulation, target=target)
    assert brian_record.count(name) >= 150  # seen 233 and 337
    assert report.identical and report.passed


def test_float32_matches_and_explains_every_divergence(paired):
    simulation = library.scenario("lif", seed=0)
    _, torch_record, report = paired(simulation, dtype="float32")
    assert report.tolerance_class == "float32"
    assert report.matched_fraction["lif"] >= FLOAT32_MATCHED
    assert report.divergences, "float32 is expected to differ somewhere in 1300 spikes"
    first = report.first_divergence
    assert first.explanation.startswith("near threshold")
    assert abs(first.margin) < 1e-5  # volts: within float32 rounding of the threshold
    assert all(d.explanation != "unexplained" for d in report.divergences)
    assert report.passed


def test_float32_class_fails_on_one_unexplained_divergence():
    """200 spikes matched (one shifted by a step, at the threshold) and one extra spike far from threshold: the
    matched fraction is within the class, yet the class fails, for that one divergence no rounding explains."""
    from bridge.app.compare import compare
    from bridge.record import Record

    steps = np.arange(0, 2000, 10)
    margins = np.full((2000, 2), -0.5)  # torch's distance past threshold: far below it
    margins[steps, 0] = 0.5
    margins[500, 0], margins[501, 0] = -1e-14, 1e-14  # the shifted spike: torch crossed a step later, at threshold
    reference = Record("brian2", 1e-4, 2000, {"pop": (np.zeros(200, int), steps)}, {})
    shifted = np.where(steps == 500, 501, steps)
    candidate = Record("torch", 1e-4, 2000, {"pop": (np.r_[np.zeros(200, int), 1], np.r_[shifted, 1234])}, {},
                       {"pop": margins})
    report = compare(reference, candidate, {"pop": 2}, tolerance_class="float32", eps=np.finfo(np.float32).eps)
    assert report.matched_fraction["pop"] == 200 / 201 >= FLOAT32_MATCHED  # Brian2's 200 matched, of 201
    by_step = {d.step: d.explanation for d in report.divergences}
    assert by_step[1234] == "unexplained" and by_step[501].startswith("near threshold")
    assert not report.passed
    # without the extra spike the class passes: the shift alone is explained
    candidate.spikes["pop"] = (np.zeros(200, int), shifted)
    assert compare(reference, candidate, {"pop": 2}, tolerance_class="float32",
                   eps=np.finfo(np.float32).eps).passed


def test_exact_class_traces_against_a_reference_of_zeros():
    """A trace of zeros: another of zeros passes; one of 1e-12 does not (infinitely far, relatively)."""
    from bridge.app.compare import compare
    from bridge.record import Record

    spikes = {"pop": (np.zeros(0, int), np.zeros(0, int))}
    zeros = Record("brian2", 1e-4, 10, spikes, {"pop.v": np.zeros((10, 2))})
    for value, passes in ((0.0, True), (1e-12, False)):
        candidate = Record("torch", 1e-4, 10, spikes, {"pop.v": np.full((10, 2), value)})
        report = compare(zeros, candidate, {"pop": 2})
        assert report.identical and report.passed == passes


def test_exact_class_names_the_first_divergence():
    """A deliberately different weight in one backend is found and located."""
    from bridge.app.compare import compare
    from torch_models.stepwise import StepwiseNetwork
    import torch

    simulation = library.scenario("lif", seed=1, duration="300*ms")
    brian_record = brian_network.run(simulation)
    module = StepwiseNetwork(simulation)
    with torch.no_grad():
        module.parameter("input_to_lif", "w")[0] += 1e-9  # a large extra current on one synapse
        torch_record = module().record()
    report = compare(brian_record, torch_record, {"lif": 40})
    assert not report.identical and not report.passed
    post = int(lower(simulation).projections["input_to_lif"].j[0])
    assert report.first_divergence.neuron == post
    assert report.first_divergence.explanation == "unexplained"


def test_cli_crosschecks_a_hand_written_json_model(tmp_path, capsys):
    code = main(["crosscheck", "examples/izhikevich.json", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["identical"] is True and report["passed"] is True
    assert report["counts"]["izh"]["brian2"] == report["counts"]["izh"]["torch"] >= 50
    assert (tmp_path / "crosscheck.png").stat().st_size > 10_000
    assert "identical spikes: yes" in capsys.readouterr().out


def test_a_crosscheck_s_runs_are_a_neo_block_that_neo_reads_back(tmp_path):
    """records.pkl: one Segment per backend; a SpikeTrain per neuron with the run's spike times (s), every
    neuron's (also those that did not spike); an AnalogSignal per record key in the description's unit (volt),
    sampled every step; Brian2's and torch's the same numbers."""
    import quantities as pq
    from neo.io import PickleIO

    assert main(["crosscheck", "examples/izhikevich.json", "--out", str(tmp_path)]) == 0
    simulation = library.simulation("examples/izhikevich.json")
    brian = brian_network.run(simulation)
    block = PickleIO(str(tmp_path / "records.pkl")).read_block()
    assert [segment.name for segment in block.segments] == ["brian2", "torch"]
    n = simulation.network.width("izh")
    for segment in block.segments:
        trains = [train for train in segment.spiketrains if train.annotations["population"] == "izh"]
        assert len(trains) == n and trains[3].name == "izh[3]"
        neurons, steps = brian.spikes["izh"]
        for neuron in range(n):
            np.testing.assert_array_equal(trains[neuron].rescale(pq.s).magnitude, steps[neurons == neuron] * 1e-4)
        assert float(trains[0].t_stop.rescale(pq.s)) == pytest.approx(brian.n_steps * 1e-4, rel=1e-12)
        (signal,) = [s for s in segment.analogsignals if s.name == "izh.v"]
        assert signal.units == pq.V and float(signal.sampling_period.rescale(pq.s)) == 1e-4
        np.testing.assert_array_equal(signal.magnitude, brian.traces["izh.v"])


def test_cli_exit_code_for_bad_input(tmp_path, capsys):
    bad = json.loads(open("examples/izhikevich.json").read())
    bad["network"]["projections"][0]["delays"] = "-1*ms"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["crosscheck", str(path), "--out", str(tmp_path)]) == 2
    assert "Projection 'drive_to_izh'.delays" in capsys.readouterr().err
    assert main(["crosscheck", "no_such_model"]) == 2


def test_a_run_that_will_not_fit_is_refused_before_it_starts(monkeypatch):
    import torch_models.module
    from bridge.errors import DescriptionError
    from bridge.memory import torch_run_bytes
    from torch_models.stepwise import StepwiseNetwork

    simulation = library.scenario("lif", seed=0, duration="100*ms")
    module = StepwiseNetwork(simulation)
    plan = lower(simulation)
    parts = torch_run_bytes(module.plan, 4, 8, module.records(None))
    for key, (population, *_) in plan.records.items():  # by hand: a trace of every step, batch and neuron
        assert parts[f"RunSettings.record[{key!r}]"] == plan.n_steps * 4 * plan.populations[population].n * 8
    selected = "lif.v[0:10:3] every 1*ms"  # 4 neurons, every 10th step of 1000
    assert torch_run_bytes(module.plan, 4, 8, module.records([selected])) == {
        **{key: value for key, value in parts.items() if "record" not in key},
        f"RunSettings.record[{selected!r}]": 100 * 4 * 4 * 8}
    without_margins = torch_run_bytes(module.plan, 4, 8, module.records(None), margins=False)
    with_gradients = torch_run_bytes(module.plan, 4, 8, module.records(None), gradients=True)
    # by hand: 4 rows x 40 neurons, 4 variables (v, I_syn, lastspike, not_refractory) of 8 bytes, and per step of
    # 1000 a spike (1 byte; 8 with gradients) and a margin (8 bytes)
    assert (parts["Population 'lif'"], without_margins["Population 'lif'"], with_gradients["Population 'lif'"]) == \
           (160 * (32 + 1000 * 9), 160 * (32 + 1000), 160 * (32 + 1000 * 16))
    with torch.no_grad():
        spikes = module(batch_size=4).spikes["lif"]
    monkeypatch.setattr(torch_models.module, "available_bytes", lambda device: sum(parts.values()) - 1)
    with pytest.raises(DescriptionError, match=r"the run needs about [\d,]+ bytes .* more than the [\d,]+ bytes"):
        module(batch_size=4)
    assert module(batch_size=3).spikes["lif"].sum() > 0  # a smaller batch fits
    lean = module(batch_size=4, margins=False)  # so does one that keeps no margins, with the same spikes
    assert lean.margins == {} and torch.equal(lean.spikes["lif"], spikes)


@pytest.mark.slow
def test_selftest_says_per_model_whether_the_exact_class_holds_and_exits_1_where_not(monkeypatch, capsys):
    """`spikebridge selftest` on two library models (the LIF's scenario shortened to 100 ms): the versions, one line
    per model with its identical spikes; a model whose torch run is made to differ (one spike fewer) is named, and
    the exit code is 1."""
    from bridge.app import paired

    lif = lambda seed=0: library.lif_scenario(seed, duration="100*ms")
    monkeypatch.setattr(library, "MODELS", {"lif": (library.lif, lif), "lif_copy": (library.lif, lif)})
    assert main(["selftest"]) == 0
    out = capsys.readouterr().out
    spikes = brian_network.run(lif()).count("lif")
    assert f"  lif            exact ({spikes} spikes identical)" in out and spikes > 20
    assert "brian2 2." in out.splitlines()[0] and out.strip().endswith("holds for all 2 library models")
    original = paired.paired_run

    def one_spike_fewer(simulation, **kwargs):
        brian, torch_record, report = original(simulation, **kwargs)
        if calls.append(None) or len(calls) == 2:  # the second model
            neurons, steps = torch_record.spikes["lif"]
            torch_record.spikes["lif"] = (neurons[1:], steps[1:])
            report = paired.compare_records(simulation, brian, torch_record, "float64")
        return brian, torch_record, report

    calls = []
    monkeypatch.setattr(paired, "paired_run", one_spike_fewer)
    assert main(["selftest"]) == 1
    out = capsys.readouterr().out
    assert "  lif_copy       NOT exact: first divergence at step" in out
    assert out.strip().endswith("the exact class does NOT hold for lif_copy")
