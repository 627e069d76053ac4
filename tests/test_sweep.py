"""Sweeps (bridge/app/sweep.py): a model over a grid of values, torch variants batched, Brian2 on a dask cluster,
results per run written atomically, interrupted sweeps resumed."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest
from neo.io import PickleIO

from bridge import library

from bridge.app import sweep as sweeps
from bridge.errors import DescriptionError
from bridge.app.paired import paired_run

TAU = "network.populations.lif_euler.model.parameters.tau_mem"
SWEEP = {"base": "lif_euler", "run": "paired", "vary": {
    "run.duration": ["100*ms"],
    "network.sources.poisson.rate": ["8*Hz", "12*Hz"],
    TAU: {"linspace": [10, 20, 2], "unit": "ms"}}}
COMPARED = ["run", "network.sources.poisson.rate", TAU, "lif_euler.spikes", "lif_euler.rate_hz", "identical"]


def write_sweep(folder, **changes):
    path = folder / "sweep.json"
    path.write_text(json.dumps({**SWEEP, **changes}))
    return path


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The sweep run serially in this process: (its folder, its table)."""
    folder = tmp_path_factory.mktemp("serial")
    return folder, sweeps.run(write_sweep(folder), folder / "out", scheduler="serial", progress=False)


def test_paired_sweep_rows_match_runs_described_by_hand(serial):
    folder, table = serial
    assert len(table) == 4 and table["identical"].all() and table["passed"].all()
    assert list(table[TAU]) == ["10.0*ms", "20.0*ms"] * 2
    base = library.scenario("lif_euler")
    source = dataclasses.replace(base.network.sources[0], rate="12*Hz")
    model = dataclasses.replace(base.network.populations[0].model,
                                parameters={**base.network.populations[0].model.parameters, "tau_mem": "20*ms"})
    network = dataclasses.replace(base.network, sources=(source,), populations=(
        dataclasses.replace(base.network.populations[0], model=model),))
    by_hand = dataclasses.replace(base, network=network, run=dataclasses.replace(base.run, duration="100*ms"))
    brian_record, _, _ = paired_run(by_hand)
    row = table.set_index("run").loc["run_0003"]
    assert row["lif_euler.spikes"] == brian_record.count("lif_euler") > 10
    assert row["lif_euler.rate_hz"] == pytest.approx(brian_record.count("lif_euler") / (20 * 0.1))
    saved = pd.read_csv(folder / "out" / "results.csv")
    assert list(saved["lif_euler.spikes"]) == list(table["lif_euler.spikes"])
    assert (folder / "out" / "summary.png").stat().st_size > 10_000
    block = PickleIO(str(folder / "out" / "runs" / "run_0003" / "records.pkl")).read_block()
    assert [segment.name for segment in block.segments] == ["brian2", "torch"]
    trains = [[train.magnitude.tolist() for train in segment.spiketrains] for segment in block.segments]
    assert trains[0] == trains[1] and sum(map(len, trains[0])) == brian_record.count("lif_euler")


def test_torch_variants_batched_equal_one_run_each(tmp_path):
    batched = sweeps.run(write_sweep(tmp_path, run="torch", batch=2), tmp_path / "batched", "serial", progress=False)
    single = sweeps.run(write_sweep(tmp_path, run="torch", batch=1), tmp_path / "single", "serial", progress=False)
    assert list(batched["lif_euler.spikes"]) == list(single["lif_euler.spikes"])
    assert len(set(batched["lif_euler.spikes"])) == 4  # the variants differ
    runs = sweeps.load(write_sweep(tmp_path, run="torch", batch=2))
    todo = [(f"run_{k}", values, sweeps.varied(runs.simulation(), values)) for k, values in enumerate(runs.runs())]
    assert [ids for _, ids in sweeps._torch_batches(todo, "float64", 2)] == [["run_0", "run_1"], ["run_2", "run_3"]]


def test_bad_sweep_files_are_refused_naming_the_file_and_field(tmp_path):
    cases = {"network.populations.nope.model.parameters.tau_mem": r"vary\['network.populations.nope.*no object "
                                                                 r"named 'nope' here; names: \['lif_euler'\]",
             "network.populations.lif_euler.model.parameters.tau_x": r"vary\[.*\]: no key 'tau_x' here"}
    for path, message in cases.items():
        with pytest.raises(DescriptionError, match=r"sweep.json: " + message):
            sweeps.load(write_sweep(tmp_path, vary={path: ["1*ms"]}))
    with pytest.raises(DescriptionError, match=r"sweep.json: vary\['run.duration'\]: \[1, 2\] must be 3 finite "
                                               r"numbers"):
        sweeps.load(write_sweep(tmp_path, vary={"run.duration": {"linspace": [1, 2]}}))
    with pytest.raises(DescriptionError, match=r"sweep.json: run: 'both'; allowed"):
        sweeps.load(write_sweep(tmp_path, run="both"))
    done = subprocess.run([sys.executable, "-m", "bridge.app.cli", "sweep", str(write_sweep(tmp_path, run="both")),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert done.returncode == 2 and "sweep.json: run: 'both'" in done.stderr and "Traceback" not in done.stderr


def test_a_value_the_description_refuses_fails_its_run_only(tmp_path):
    path = write_sweep(tmp_path, run="torch", vary={**SWEEP["vary"], "network.sources.poisson.rate": ["-5*Hz",
                                                                                                       "30*Hz"]})
    table = sweeps.run(path, tmp_path / "out", "serial", progress=False)
    failed = table[table["error"].notna()]
    assert list(failed["run"]) == ["run_0000", "run_0001"]
    assert failed["error"].str.contains("rate").all() and table["error"].isna().sum() == 2


def results(folder):
    return {path.parent.name: (path.stat().st_mtime_ns, path.read_text())
            for path in (folder / "runs").glob("run_*/result.json")}


def start_sweep(path, out, *options):
    return subprocess.Popen([sys.executable, "-m", "bridge.app.cli", "sweep", str(path), "--out", str(out), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_results(out, count, process, timeout=120):
    deadline = time.time() + timeout
    while len(results(out)) < count if (out / "runs").exists() else True:
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_recomputing(serial, tmp_path):
    """SIGINT stops the sweep with exit 130 and a line saying where; --resume computes only what is missing and
    ends with the table of an uninterrupted sweep."""
    path, out = write_sweep(tmp_path), tmp_path / "out"
    process = start_sweep(path, out, "--scheduler", "serial")
    wait_for_results(out, 1, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "--resume" in stderr and "Traceback" not in stderr
    before = results(out)
    assert 1 <= len(before) < 4 and not (out / "results.csv").exists()
    with pytest.raises(DescriptionError, match="holds a sweep's results; give --resume"):
        sweeps.run(path, out, "serial", progress=False)
    (tmp_path / "other").mkdir()
    other = write_sweep(tmp_path / "other", vary={**SWEEP["vary"], "network.sources.poisson.rate": ["9*Hz"]})
    with pytest.raises(DescriptionError, match="holds the results of a different sweep"):
        sweeps.run(other, out, "serial", resume=True, progress=False)
    with pytest.raises(DescriptionError, match="holds no sweep to resume"):
        sweeps.run(path, tmp_path / "empty", "serial", resume=True, progress=False)
    assert results(out) == before  # nothing of the other sweep ran into it
    table = sweeps.run(path, out, "serial", resume=True, progress=False)
    assert all(results(out)[run] == stamp for run, stamp in before.items())  # not computed again
    pd.testing.assert_frame_equal(table[COMPARED], serial[1][COMPARED])


@pytest.mark.slow
def test_local_cluster_with_a_killed_worker_gives_the_serial_rows(serial, tmp_path):
    """Two dask worker processes; one is killed (SIGKILL) after the first result: dask runs its tasks again
    elsewhere, and the rows equal those of the serial sweep."""
    path, out = write_sweep(tmp_path), tmp_path / "out"
    process = start_sweep(path, out, "--workers", "2")
    wait_for_results(out, 1, process, timeout=240)
    workers = [child for child in psutil.Process(process.pid).children()
               if "spawn_main" in " ".join(child.cmdline())]  # LocalCluster's worker processes
    assert len(workers) == 2 and len(results(out)) < 4
    os.kill(workers[-1].pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    table = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(table[COMPARED], serial[1][COMPARED], check_dtype=False)
