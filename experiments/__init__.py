"""Scripted experiments: `spikebridge list`, `spikebridge run NAME`. Each is an importable module with
run(out, seed, quick, device, ...) -> results dict (also written to OUT/results.json with PNGs) and
summary(results) -> one screen of text. The command line finds EXPERIMENTS through the entry point group
'spikebridge.experiments' (setup.cfg), so bridge never imports this package. Task code lives here too: IPD
stimuli and the ideal observer (ipd.py), the circuit's outcome analysis (delay_circuit.py), the digits."""
import contextlib

EXPERIMENTS = {"all-or-none": ("experiments.all_or_none",
                               "seed 000's all-or-none law: the ReLU net's trained b_final, and LIF spike counts "
                               "across the rheobase, both backends"),
               "weighted-sum": ("experiments.weighted_sum",
                                "seed 001's toes/record/fans predictions from spike counts summed by the "
                                "weighted-sum neuron, both backends"),
               "delay-circuit": ("experiments.delay_circuit",
                                 "seed 003's inhibitory delay-adjustment circuit, dynamic delays, both backends"),
               "delay-toy": ("experiments.delay_toy",
                             "seed 003's spike-pattern alignment toy: per-class delays learned with the max-sum loss"),
               "spiking-net": ("experiments.spiking_net",
                               "seed 002's SpikingNet (penalty neurons) trained in torch vs a ReLU net, re-run in Brian2"),
               "ipd-delays": ("experiments.ipd_delays",
                              "seed 003's delay-only IPD classifier (36 classes), learned delays vs the ideal observer"),
               "ipd-cotrain": ("experiments.ipd_cotrain",
                               "IPD localisation with delays and weights learned together in torch, re-run in Brian2"),
               "fit-hh": ("experiments.fit_hh",
                          "Hodgkin-Huxley conductances learned by gradient from voltage traces, validated in Brian2"),
               "fit-adex": ("experiments.fit_adex",
                            "AdEx parameters learned by gradient from spike times under noisy currents, judged on "
                            "held-out currents in Brian2"),
               "fit-network": ("experiments.fit_network",
                               "a recurrent E/I network's weights and delays learned from a teacher's spikes, "
                               "validated in Brian2")}


@contextlib.contextmanager
def one_thread():
    """torch on one thread inside the block: small tensors gain nothing from more, and contend for the cores."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_figure(fig, path):
    """A figure as PNG, written atomically."""
    import matplotlib.pyplot as plt

    from bridge.app import files
    fig.tight_layout()
    with files.atomic(path) as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    plt.close(fig)

