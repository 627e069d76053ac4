"""Bad input ends in one line naming the file and the field, exit code 2 (1 is a failed comparison); nothing is
silently coerced; work that will not fit is refused before it starts (issue 20)."""
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest
import torch

import torch_models
from bridge import library

from bridge.app import files, interrupts
from bridge.app.cli import main
from bridge.description import SpikeTrains, from_json
from bridge.errors import DescriptionError
from bridge.app.paired import paired_run
from torch_models.surrogate import SURROGATES


def base():
    """A small valid description as JSON data (the lif_euler scenario, 10 ms)."""
    data = json.loads(library.scenario("lif_euler").to_json())
    data["run"]["duration"] = "10*ms"
    return data


def user_function(expression, argument_units):
    """A CASES change: the threshold calls a UserFunction `boost` of one argument x."""
    def change(data):
        model = population(data)["model"]
        model["parameters"]["boost"] = {"type": "UserFunction", "arguments": ["x"], "expression": expression,
                                        "argument_units": argument_units}
        model["threshold"] = "boost(v) > v_th"
    return change


def population(data):
    return data["network"]["populations"][0]


def projection(data):
    return data["network"]["projections"][0]


def set_in(getter, key, value):
    def change(data):
        getter(data)[key] = value
    return change


def drop(getter, key):
    return lambda data: getter(data).pop(key)


def change(segment, variable, value):
    return {"type": "Change", "segment": segment, "variable": variable, "value": value}


def two_runs(run_change):
    def change_data(data):
        data["run"].update(segments=2, changes=[run_change])
    return change_data


def onto_synapses(on_pre, on_post):
    """A projection from the input onto the synapses of the base's projection."""
    return {"type": "Projection", "name": "onto_synapses", "source": "poisson", "target": "input_to_lif",
            "synapse": {"type": "SynapseModel", "on_pre": on_pre, "on_post": on_post}, "i": [0], "j": [0]}


CASES = {  # name: (change to the base data, what the message must say)
    "missing field": (drop(population, "n"), r"Population: missing required fields \['n'\]"),
    "object without type": (drop(lambda d: population(d)["model"], "type"),
                            r"Population.model: expected a NeuronModel object"),
    "list element without type": (drop(population, "type"), r"Network.populations: .* is not a Population object"),
    "unknown unit": (set_in(lambda d: population(d)["model"]["parameters"], "tau_mem", "3*furlong"),
                     r"parameters\['tau_mem'\]: cannot read quantity '3\*furlong': \"unknown unit 'furlong'\""),
    "synapse model syntax": (set_in(lambda d: projection(d)["synapse"], "model", "w : 1 +"),
                             r"SynapseModel.model: EquationError: Parsing failed: w : 1 \+"),
    "shorter than a step": (set_in(lambda d: d["run"], "duration", "0.01*ms"),
                            r"RunSettings.duration: '0.01\*ms' is shorter than one step"),
    "seed not a number": (set_in(lambda d: d["network"]["sources"][0], "seed", "abc"),
                          r"PoissonTrains 'poisson'.seed: 'abc' must be an integer >= 0"),
    "unknown method": (set_in(lambda d: population(d)["model"], "method", "magic"),
                       r"NeuronModel.method: 'magic'; known methods: \[.*'euler'"),
    "delays in mV": (set_in(projection, "delays", "2*mV"), r"Projection 'input_to_lif'.delays: '2\*mV' is not a time"),
    "max_delay in mV": (set_in(projection, "max_delay", "20*mV"), r"max_delay: '20\*mV' is not a time"),
    "fractional synapse index": (lambda d: projection(d)["i"].__setitem__(0, 1.5),
                                 r"Projection 'input_to_lif'.i: 1.5 is not a whole number"),
    "reset without threshold": (set_in(lambda d: population(d)["model"], "threshold", ""),
                                r"NeuronModel.reset: a reset needs a threshold"),
    "power tower": (set_in(lambda d: population(d)["model"], "threshold", "v > 1 + 0*9**9**9"),
                    r"NeuronModel.threshold: '9 \*\* 9 \*\* 9': exponents may not hold a power"),
    "unknown unit in a declaration": (lambda d: population(d)["model"].__setitem__(
        "equations", population(d)["model"]["equations"] + "\nI_ext : furlong"),
        r"NeuronModel.equations: EquationError: .*refers to 'furlong', but this is not a base unit"),
    "unknown unit in a synaptic declaration": (set_in(lambda d: projection(d)["synapse"], "model", "w : furlong"),
                                               r"SynapseModel.model: EquationError: .*refers to 'furlong'"),
    "ragged current rows": (lambda d: d["network"]["currents"].append(
        {"type": "CurrentInjection", "name": "drive", "target": "lif_euler", "variable": "v_leak",
         "values": [[0.5], [0.5, 0.5]]}), r"CurrentInjection 'drive'.values: rows of different lengths"),
    "ragged delays": (set_in(projection, "delays", [[0.001], [0.001, 0.002]]),
                      r"Projection 'input_to_lif'.delays: rows of different lengths"),
    "named like a monitor": (set_in(projection, "name", "spikes_lif_euler"),
                             r"Network: names \['spikes_lif_euler'\] are those of spikebridge's own Brian2 monitors"),
    "refractory with an unknown unit": (set_in(lambda d: population(d)["model"], "refractory", "2*msec"),
                                        r"NeuronModel.refractory: unknown identifier: .*\"msec\" could not be"),
    "refractory neither time nor condition": (set_in(lambda d: population(d)["model"], "refractory", "v + 1"),
                                              r"NeuronModel.refractory: TypeError: Refractory expression is "
                                              r"dimensionless but not a boolean value"),
    "record index out of range": (set_in(lambda d: d["run"], "record", ["lif_euler.v[0, 3:5, 99]"]),
                                  r"RunSettings.record\['lif_euler.v\[0, 3:5, 99\]'\]: index 99 is out of range"),
    "record period not whole steps": (set_in(lambda d: d["run"], "record", ["lif_euler.v every 0.15*ms"]),
                                      r"every 0.15\*ms'\]: 0.15\*ms is not a whole number of steps of dt"),
    "record key without a variable": (set_in(lambda d: d["run"], "record", ["lif_euler"]),
                                      r"RunSettings.record\['lif_euler'\]: expected 'owner.variable'"),
    "segments that do not add up": (set_in(lambda d: d["run"], "segments", ["5*ms", "4*ms"]),
                                    r"RunSettings.segments: \('5\*ms', '4\*ms'\) add up to 90 steps; the run has 100"),
    "change in a segment the run lacks": (set_in(lambda d: d["run"], "changes", [change(1, "lif_euler.v", "0.5")]),
                                          r"'lif_euler.v' \(segment 1\).segment: 1; the run has segments 0 .. 0"),
    "change of an unknown variable": (two_runs(change(1, "lif_euler.w", "0.5")),
                                      r"\(segment 1\).variable: unknown variable 'w'; 'lif_euler' has \['I', 'v'\]"),
    "change with a value per neuron too few": (two_runs(change(1, "lif_euler.v", [0.5, 0.1])),
                                               r"\(segment 1\).value: 2 values; 'lif_euler' has 20 elements"),
    "change in other units": (two_runs(change(1, "lif_euler.v", "2*mV")),
                              r"\(segment 1\).value: '2\*mV' is in volt; v is in 1"),
    "link of a variable not declared linked": (set_in(population, "links", {"v": "lif_euler.I"}),
                                               r"Population 'lif_euler'.links: \['v'\]; the model declares \[\] "
                                               r"\(linked\): give each one link"),
    "link to an unknown population": (lambda d: (population(d)["model"].__setitem__(
        "equations", population(d)["model"]["equations"] + "\nJ : 1 (linked)"), population(d).__setitem__(
        "links", {"J": "elsewhere.x"})), r"Population 'lif_euler'.links\['J'\]: unknown name 'elsewhere'"),
    "synaptic link of a variable not declared linked": (set_in(projection, "links", {"w": "lif_euler.v"}),
                                                        r"Projection 'input_to_lif'.links: \['w'\]; the model "
                                                        r"declares \[\] \(linked\): give each one link"),
    "synaptic link to a population of another size": (lambda d: (set_in(lambda d: projection(d)["synapse"], "model",
                                                                        "w : 1\nM : 1 (linked)")(d),
                                                                 set_in(projection, "links", {"M": "lif_euler.v"})(d)),
                                                      r"Projection 'input_to_lif'.links\['M'\]: 'lif_euler.v': give "
                                                      r"'population.variable' of a population of 1007 neurons or of "
                                                      r"one"),
    "synapses onto synapses listed after": (lambda d: d["network"]["projections"].insert(0, onto_synapses(
        "w_post += 0.1", "")), r"Projection 'onto_synapses'.target: the projection 'input_to_lif' is listed after "
                               r"'onto_synapses'; list a projection before those that connect to its synapses"),
    "synapses onto synapses triggered by them": (lambda d: d["network"]["projections"].append(onto_synapses(
        "", "w_post += 0.1")), r"Projection 'onto_synapses'.target: the projection 'input_to_lif' emits no events "
                               r"for the pathways \['post'\]"),
    "poisson input beyond the population": (lambda d: d["network"]["poisson_inputs"].append(
        {"type": "PoissonInput", "name": "drive", "target": "lif_euler", "variable": "v", "n": 10, "rate": "5*Hz",
         "weight": "0.1", "start": 5, "stop": 99}),
        r"PoissonInput 'drive'.stop: neurons 5..99 out of range; need 0 <= start < stop <= n = 20"),
    "event the model lacks": (set_in(lambda d: d["run"], "events", ["lif_euler.burst"]),
                              r"RunSettings.events\['lif_euler.burst'\]: 'lif_euler' has the custom events \[\]"),
    "white noise in synapses": (set_in(lambda d: projection(d)["synapse"], "model",
                                       "w : 1\ndc/dt = -c/(10*ms) + xi/sqrt(ms) : 1 (clock-driven)"),
                                r"Projection 'input_to_lif'.synapse.model: white noise \['xi'\]: both backends share "
                                r"the white noise of populations only"),
    "function reading a name not its argument": (user_function("x * v_leak", ["1"]), r"UserFunction.expression: "
                                                 r"'v_leak' in 'x \* v_leak'; allowed: numbers, the arguments"),
    "function calling python": (user_function("__import__('os')", ["1"]), r"UserFunction.expression: "
                                                                         r"\"__import__\('os'\)\" in"),
    "function with a unit too few": (user_function("x", []), r"UserFunction.argument_units: 0 units for 1 arguments"),
    "function of other units than code gives": (user_function("x", ["volt"]), r"NeuronModel.threshold: .*"
                                                r"Argument number 1 for function boost does not have the correct"),
    "a billion neurons": (set_in(population, "n", 10**9), r"RunSettings.record\['lif_euler.v'\]: the run needs "
                                                          r"about [\d,]+ bytes \([\d,]+ for this part\)"),
}


def crosscheck_case(name, folder):
    """`spikebridge crosscheck` of the base description with CASES[name]'s change: (file, exit code)."""
    data = base()
    CASES[name][0](data)
    path = Path(folder) / f"{name.replace(' ', '_')}.json"
    path.write_text(json.dumps(data))
    return path, main(["crosscheck", str(path), "--out", str(Path(folder) / "out")])


@pytest.mark.parametrize("name", CASES)
def test_bad_description_is_one_line_naming_file_and_field_with_exit_2(name, tmp_path, capsys):
    message = CASES[name][1]
    start = time.perf_counter()
    path, code = crosscheck_case(name, tmp_path)
    assert code == 2
    error = capsys.readouterr().err
    assert time.perf_counter() - start < 10
    assert error.startswith(f"error: {path}: ") and error.count("\n") == 1, error
    assert re.search(message, error), error


def test_every_bad_description_is_refused_within_2_gb(tmp_path):
    """All CASES in one fresh process: exit code 2 each, and the process's peak memory (imports included)
    stays under 2 GB (a billion neurons is refused by its estimate, not by trying)."""
    script = (f"import json, resource, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_errors\n"
              f"codes = [test_errors.crosscheck_case(name, {str(tmp_path)!r})[1] for name in test_errors.CASES]\n"
              "print(json.dumps([codes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    codes, peak_kb = json.loads(done.stdout.splitlines()[-1])
    assert codes == [2] * len(CASES)
    assert peak_kb < 2 * 1024 ** 2, f"peak {peak_kb / 1024 ** 2:.2f} GB"


@pytest.mark.parametrize("text, message", [("{", r"cannot read a description: Expecting property name"),
                                           ("[" * 100_000 + "]" * 100_000, r"JSON: nested too deeply")])
def test_unreadable_files_are_named(text, message, tmp_path, capsys):
    path = tmp_path / "model.json"
    path.write_text(text)
    assert main(["crosscheck", str(path)]) == 2
    assert re.search(f"error: {path}: {message}", capsys.readouterr().err)


@pytest.mark.parametrize("holding, content", [("list", lambda d: [d]), ("Population", population)])
def test_a_file_holding_no_simulation_is_refused(holding, content, tmp_path, capsys):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(content(base())))
    assert main(["crosscheck", str(path)]) == 2
    error = capsys.readouterr().err
    expected = f"JSON: holds a {holding}; expected a Simulation ({{\"type\": \"Simulation\", ...}})"
    assert error == f"error: {path}: {expected}\n"
    with pytest.raises(DescriptionError, match=f"JSON: holds a {holding}; expected a Simulation"):
        from_json(json.dumps(content(base())))


def test_a_folder_as_the_model_file_and_cuda_without_a_gpu(tmp_path, capsys):
    folder = tmp_path / "model.json"
    folder.mkdir()
    assert main(["crosscheck", str(folder)]) == 2
    assert f"error: {folder}: cannot read a description: [Errno 21] Is a directory" in capsys.readouterr().err
    assert main(["run", "delay-toy", "--device", "cuda", "--out", str(tmp_path / "toy")]) == 2
    assert "error: --device: cuda, but torch sees no GPU here" in capsys.readouterr().err


def test_spike_trains_refuse_spikes_after_the_run_and_fractional_indices():
    trains = SpikeTrains("in", 2, [0, 1], [1.1e-3, 0.0])
    indices, steps = trains.spike_steps(1e-4, 20)  # neuron 0 at step 11 and neuron 1 at step 0 are no duplicate
    assert indices.tolist() == [0, 1] and steps.tolist() == [11, 0]
    with pytest.raises(DescriptionError, match=r"SpikeTrains 'in'.times: a spike at 0.0011 s falls at or after the "
                                               r"end of the run \(10 steps"):
        trains.spike_steps(1e-4, 10)
    with pytest.raises(DescriptionError, match=r"SpikeTrains 'in'.indices: 0.5 is not a whole number"):
        SpikeTrains("in", 2, [0.5], [0.0])


def test_current_rows_must_match_the_steps():
    from bridge.description import CurrentInjection, Network, NeuronModel, Population, RunSettings, Simulation
    cell = Population("p", NeuronModel("dv/dt = (I - v)/(10*ms) : 1\nI : 1"), 2)
    rows = [[0.0, 0.0]] * 11
    with pytest.raises(DescriptionError, match=r"CurrentInjection 'drive'.values: 11 rows; need 1 or n_steps = 10"):
        Simulation(Network((cell,), currents=(CurrentInjection("drive", "p", "I", rows),)), RunSettings("1*ms"))


def test_nan_in_a_report_is_written_as_null_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"1 values are NaN or infinite, written as null: traces.v.max_rel"):
        files.write_json(tmp_path / "report.json", {"traces": {"v": {"max_rel": float("nan"), "max_abs": 1.0}}})
    assert json.loads((tmp_path / "report.json").read_text()) == {"traces": {"v": {"max_rel": None, "max_abs": 1.0}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert json.loads(files.json_text({"a": 1.5})) == {"a": 1.5}


def test_half_precision_is_refused_not_run_under_another_label():
    with pytest.raises(DescriptionError, match=r"dtype: 'float16'; allowed: \['float64', 'float32'\]"):
        paired_run(library.scenario("lif_euler"), dtype="float16")


@pytest.mark.parametrize("record, message", [
    (["lif_euler"], r"record\['lif_euler'\]: expected 'owner.variable'"),
    ({"lif_euler": ["v"]}, r"record\['lif_euler'\]: expected 'owner.variable'"),
    (["lif_euler.w"], r"record\['lif_euler.w'\]: unknown variable 'w'; population 'lif_euler' has \['I', 'v'\]"),
    (["lif.v"], r"record\['lif.v'\] \(a population or projection\): unknown name 'lif'"),
    (["lif_euler.v[20]"], r"record\['lif_euler.v\[20\]'\]: index 20 is out of range 0 .. 19")])
def test_a_module_s_record_keys_are_checked_as_the_description_s(record, message):
    module = torch_models.compile(library.scenario("lif_euler"))
    with pytest.raises(DescriptionError, match="^" + message):
        module(record=record)
    assert module(record=["lif_euler.v[19]"]).traces["lif_euler.v[19]"].shape == (1, module.n_steps, 1)


def crosscheck(model, out, **options):
    return subprocess.Popen([sys.executable, "-m", "bridge.app.cli", "crosscheck", str(model), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


def lose_an_interrupt():
    """A KeyboardInterrupt raised inside a weakref callback (where a Ctrl-C lands when the garbage collector runs
    Brian2's): Python reports it to sys.unraisablehook and goes on."""
    class Thing:
        pass

    def interrupt(_):
        raise KeyboardInterrupt

    thing = Thing()
    reference = weakref.ref(thing, interrupt)  # alive while `thing` dies: its callback runs
    del thing
    assert reference() is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_lost_in_a_garbage_collector_callback_stops_the_next_result_written(tmp_path):
    """Remembered (as every command runs), the lost interrupt is raised by the next result written, which is not
    written, and only once; not remembered, writes go on."""
    result = tmp_path / "result.json"
    with interrupts.remembered():
        lose_an_interrupt()
        with pytest.raises(KeyboardInterrupt):
            files.write_text(result, "{}")
        assert not result.exists() and not list(tmp_path.iterdir())
        files.write_text(result, "{}")
        assert result.read_text() == "{}"
    with interrupts.remembered():
        pass
    lose_an_interrupt()
    files.write_text(result, "[]")
    assert result.read_text() == "[]"


def crosscheck_under_way(folder, **options):
    """A crosscheck of lif_euler for 1 s, in `folder`/out, once its torch run is under way (its progress bar has
    appeared): (the process, the list its stderr is read into, character by character, by the thread returned
    third, until it ends)."""
    model = folder / "model.json"
    model.write_text(json.dumps({**base(), "run": {**base()["run"], "duration": "1000*ms"}}))
    process, stderr = crosscheck(model, folder / "out", **options), []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + 120
    while "torch:" not in "".join(stderr):
        assert process.poll() is None and time.time() < deadline, "".join(stderr)
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before the signal"
    return process, stderr, reader


def interruptible():
    """SIGINT at its default in the child, even when the suite runs as a background job (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_a_crosscheck_with_exit_130_and_no_report(tmp_path):
    """SIGINT while the torch run is under way: exit 130, one line, no traceback, no report (an earlier run's
    removed)."""
    out = tmp_path / "out"
    (out).mkdir()
    (out / "report.json").write_text("{}")  # an earlier run's
    process, stderr, reader = crosscheck_under_way(tmp_path, preexec_fn=interruptible)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, "".join(stderr)
    reader.join(timeout=10)
    assert "interrupted" in "".join(stderr) and "Traceback" not in "".join(stderr), "".join(stderr)
    assert not (out / "report.json").exists()


@pytest.mark.slow
def test_a_background_job_that_ignores_sigint_keeps_running(tmp_path):
    """SIGINT reaches the job while its torch run is under way (its progress bar has appeared; Brian2's handler,
    installed at import, is in place), and the job goes on to its report."""
    process, stderr, reader = crosscheck_under_way(tmp_path,
                                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0, "".join(stderr)
    reader.join(timeout=10)
    assert "torch: 100%" in "".join(stderr) and (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("name, formula", [
    ("superspike", lambda m: 1 / (1 + 25 * abs(m)) ** 2),
    ("sigmoid", lambda m: 5 * math.exp(-5 * m) / (1 + math.exp(-5 * m)) ** 2)])
def test_surrogate_gradients_equal_their_formulas(name, formula):
    """Forward: exactly the spike condition; backward: the surrogate's derivative at the margin, hand-computed
    (a flipped sign or a wrong slope fails)."""
    margins = torch.tensor([-0.3, -0.01, 0.0, 0.02, 0.5], dtype=torch.float64, requires_grad=True)
    spikes = SURROGATES[name](margins >= 0, margins)
    assert spikes.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    spikes.sum().backward()
    expected = [formula(m) for m in margins.tolist()]
    assert margins.grad.tolist() == pytest.approx(expected, rel=1e-12)


def test_compare_sees_a_difference_in_traces_alone():
    """Identical spikes, one trace off by 1e-6 of its scale: the exact class fails, and the difference is
    measured against the other backend (not the reference against itself)."""
    import numpy as np
    from bridge.app.compare import compare
    from bridge.record import Record

    spikes = {"p": (np.array([0, 1]), np.array([3, 5]))}
    trace = np.linspace(-0.07, -0.05, 20).reshape(10, 2)
    brian = Record("brian2", 1e-4, 10, dict(spikes), {"p.v": trace})
    shifted = trace.copy()
    shifted[4, 1] += 0.07e-6
    report = compare(brian, Record("torch", 1e-4, 10, dict(spikes), {"p.v": shifted}), {"p": 2})
    assert report.identical and not report.passed
    assert report.traces["p.v"]["max_abs"] == pytest.approx(0.07e-6, rel=1e-6)
    assert report.traces["p.v"]["max_rel"] == pytest.approx(1e-6, rel=1e-6)


def test_dynamic_delays_with_a_huge_max_delay_are_refused_with_the_bytes(tmp_path, capsys):
    """Dynamic delays keep a ring row (16 int32 indices and a count) per step up to max_delay: 1e6 s at 0.1 ms is
    1e10 + 1 rows of 72 bytes."""
    data = json.loads(library.scenario("delay_circuit").to_json())
    plastic = next(p for p in data["network"]["projections"] if p["delay_mode"] == "dynamic")
    plastic["max_delay"] = "1e6*second"
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    assert main(["crosscheck", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert re.search(rf"error: {path}: Projection '{plastic['name']}'.max_delay: the run needs about [\d,]+ bytes "
                     r"\(720,000,000,072 for this part\)", error), error


def test_a_description_loads_on_a_machine_too_small_to_run_it(monkeypatch):
    """Loading is the same everywhere; the memory a run needs is checked when it is lowered, on the machine that
    runs it, before any array is built."""
    from bridge import memory
    from bridge.plan import lower

    text = json.dumps(base())
    parts = memory.lowering_bytes(from_json(text))
    monkeypatch.setattr(memory, "system_available_bytes", lambda: sum(parts.values()) - 1)
    simulation = from_json(text)  # loads and validates
    with pytest.raises(DescriptionError, match=rf"the run needs about {sum(parts.values()):,} bytes"):
        lower(simulation)
    monkeypatch.setattr(memory, "system_available_bytes", lambda: sum(parts.values()))
    assert lower(simulation).n_steps == 100


@pytest.mark.parametrize("stop_at, reached", [(4, 5), (9, 10)])
def test_a_brian2_run_stopped_by_ctrl_c_is_reported_as_interrupted(stop_at, reached):
    """Brian2's SIGINT handler sets its stop flag; the run then ends after that step. Mid-run (step 4 of 10) or at
    its last step, spikebridge raises KeyboardInterrupt naming the step reached: no TypeError from the time Brian2
    leaves after a stop, no Ctrl-C lost as the run ends."""
    import brian2
    from types import SimpleNamespace

    from brian_models.network import _check_completed

    group = brian2.NeuronGroup(1, "v : 1", dt=0.1 * brian2.ms)

    @brian2.network_operation(dt=0.1 * brian2.ms)
    def ctrl_c(t):
        if round(float(t / (0.1 * brian2.ms))) == stop_at:
            brian2.Network._globally_stopped = True  # what Brian2's SIGINT handler does during a run

    network = brian2.Network(group, ctrl_c)
    network.run(1 * brian2.ms)
    with pytest.raises(KeyboardInterrupt, match=f"Brian2 stopped at step {reached} of 10"):
        _check_completed(network, 10, SimpleNamespace(dt=1e-4, n_steps=10), "numpy")


def test_code_reading_a_name_torch_lacks_is_refused_before_the_run():
    """`t_in_timesteps` is a variable of every Brian2 group that the torch backend does not carry: a threshold
    reading it is refused when the module is built, naming it (not a model that silently never spikes)."""
    import torch_models
    from bridge.description import NeuronModel, Network, Population, RunSettings, Simulation

    model = NeuronModel("v : 1", threshold="t_in_timesteps == 5")
    simulation = Simulation(Network((Population("cells", model, 2),)), RunSettings("1*ms"))
    with pytest.raises(DescriptionError, match=r"population 'cells': '_cond = t_in_timesteps == 5' reads "
                                               r"\['t_in_timesteps'\], which the torch backend has no value for"):
        torch_models.compile(simulation)
