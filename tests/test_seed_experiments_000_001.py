"""Seeds 000 (all-or-none) and 001 (weighted sum): the experiments' numbers in quick mode."""
import pytest

from experiments import all_or_none, weighted_sum


def test_all_or_none_quick(tmp_path):
    results = all_or_none.run(out=tmp_path, quick=True, progress=False)
    relu, lif = results["relu"], results["lif"]
    assert round(relu["first_epoch_gradient"], 2) == 32.02  # the seed's 0 + 32.02 + 0
    assert relu["b_final_per_epoch"][0] == pytest.approx(-3.202, abs=1e-4)  # the seed's first update
    assert relu["b_final"] == pytest.approx(-16.01, abs=0.01)  # out(0.5) = 17.01 + b_final = 1
    assert len(relu["loss_per_epoch"]) == 100 and relu["final_loss"] < 1e-8
    assert lif["rheobase_nA"] == pytest.approx(0.2)
    currents, counts = results["parameters"]["lif"]["currents_nA"], lif["counts_brian2"]
    assert all(c == 0 for i, c in zip(currents, counts) if i <= 0.2 + 1e-12)
    assert all(c > 0 for i, c in zip(currents, counts) if i > 0.2 + 1e-12)
    assert lif["rheobase_seen_nA"] == pytest.approx([0.2, 0.22])
    assert counts == lif["counts_torch"] and lif["identical_spikes"] and lif["comparison_passed"]
    assert lif["full_events"] == {"brian2": True, "torch": True}
    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "training.png", "relu_response.png",
                                                    "lif_stimulus_response.png"}


def test_weighted_sum_quick(tmp_path):
    results = weighted_sum.run(out=tmp_path, quick=True, progress=False)
    for backend in ("numpy", "brian2", "torch"):
        assert [round(p, 2) for p in results["predictions"][backend]] == [0.98, 1.11, 1.15, 1.08], backend
        assert results["max_abs_difference_to_numpy"][backend] < 1e-12, backend
    assert results["predictions"]["brian2"] == pytest.approx(results["predictions"]["torch"], abs=1e-12)
    assert results["output_spikes"] == [0, 1, 1, 1]  # theta = 1: v + theta*count carries the sum past 1
    assert results["identical_spikes"] and results["comparison_passed"]
    assert {p.name for p in tmp_path.iterdir()} >= {"results.json", "predictions.png", "v_traces.png"}


@pytest.mark.parametrize("kwargs, field", [
    (dict(weights=(0.1, 0.2)), "weights"),
    (dict(inputs={"toes": (8.5, 9.5), "record": (0.65,), "fans": (1.2, 1.3)}), "inputs"),
    (dict(inputs={"toes": (8.555,), "record": (0.65,), "fans": (1.2,)}), "inputs['toes']"),  # 855.5 spikes
    (dict(inputs={"toes": (-1.0,), "record": (0.65,), "fans": (1.2,)}), "inputs['toes']"),
    (dict(scale=0), "scale"),
    (dict(scale=0.5), "scale"),
])
def test_weighted_sum_rejects_bad_input(tmp_path, kwargs, field):
    with pytest.raises(ValueError) as error:
        weighted_sum.run(out=tmp_path, quick=True, progress=False, **kwargs)
    assert str(error.value).startswith(f"{field}:")
    assert not (tmp_path / "results.json").exists()
