"""Simulation speed and memory of the torch module against Brian2's targets (issue 18). Not a test.

Each configuration (network, size, backend, float type, batch) runs in its own process under /usr/bin/time -v,
so that peak memory (max RSS) is the configuration's own; the process reports the wall time of the simulation
alone (building, and for cpp_standalone compiling, listed apart). Networks are Brian2 scripts imported with
`spikebridge import` (bridge.app.brian2_scripts.from_brian2), so both backends run the same description.

    python bench/simulate.py --networks cuba --sizes 1000 4000 --duration 0.2 --out bench/results/simulate

Per-step costs of torch at a given thread count, without the threshold margins, best of several runs after a
warm-up (e.g. batch 1 against batch 32, issue 31 target 4):

    python bench/simulate.py --networks cuba --sizes 4000 --duration 0.05 --backends torch --dtypes float32 \
        --batches 1 32 --threads 1 --repeats 3 --no-margins [--compare-with /tmp/head]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETWORKS = {
    # Brette et al. 2007's CUBA benchmark: 80 % excitatory, 2 % connectivity, current-based exponential synapses
    "cuba": """
from brian2 import *
seed(1)
defaultclock.dt = 0.1*ms
N = {size}
taum, taue, taui = 20*ms, 5*ms, 10*ms
Vt, Vr, El = -50*mV, -60*mV, -49*mV
P = NeuronGroup(N, '''dv/dt = (ge + gi - (v - El))/taum : volt (unless refractory)
                      dge/dt = -ge/taue : volt
                      dgi/dt = -gi/taui : volt''', threshold='v > Vt', reset='v = Vr', refractory=5*ms,
                method='exact', name='P')
P.v = 'Vr + rand()*(Vt - Vr)'
we, wi = (60*0.27/10)*mV, (-20*4.5/10)*mV
excitatory = Synapses(P, P, on_pre='ge += we', name='excitatory')
inhibitory = Synapses(P, P, on_pre='gi += wi', name='inhibitory')
n_exc = int(0.8*N)
excitatory.connect('i < n_exc', p=0.02)
inhibitory.connect('i >= n_exc', p=0.02)
run({duration}*second)
""",
}
BACKENDS = ("torch", "torch-compiled", "numpy", "cython", "cpp_standalone")  # torch-compiled: compile=True
EXAMPLES = Path(__file__).parents[1] / "tests" / "brian2_examples"


def _resized(example, changes):
    """A Brian2 example of the tests as a template of {size} and {duration}: `changes` {old: new} applied."""
    text = (EXAMPLES / example).read_text().replace("{", "{{").replace("}", "}}")
    for old, new in changes.items():
        if old not in text:
            raise ValueError(f"{example}: {old!r} not found; update bench/simulate.py")
        text = text.replace(old, new)
    return text


# Brunel 2000's sparse network of excitatory and inhibitory LIF neurons (state SI: g = 5, eta = 2), N_E = 80 % of
# the neurons, connection probability 0.1 (random rather than fixed in-degree), external Poisson drive
NETWORKS["brunel"] = """
from brian2 import *
seed(3)
defaultclock.dt = 0.1*ms
N = {size}
N_E = int(0.8*N)
tau, theta, V_r, tau_rp, J, D, g, eta = 20*ms, 20*mV, 10*mV, 2*ms, 0.1*mV, 1.5*ms, 5, 2
C_E = int(0.1*N_E)
nu_ext = eta*theta/(J*C_E*tau)
neurons = NeuronGroup(N, 'dv/dt = -v/tau : volt (unless refractory)', threshold='v > theta', reset='v = V_r',
                      refractory=tau_rp, method='exact', name='neurons')
excitation = Synapses(neurons[:N_E], neurons, on_pre='v_post += J', delay=D, name='excitation')
inhibition = Synapses(neurons[N_E:], neurons, on_pre='v_post += -g*J', delay=D, name='inhibition')
excitation.connect(p=0.1)
inhibition.connect(p=0.1)
external = PoissonInput(neurons, 'v', C_E, nu_ext, weight=J)
run({duration}*second)
"""

# Brette et al. 2007's COBAHH benchmark (Hodgkin-Huxley neurons, conductance-based synapses, 2 % connectivity),
# the tests' example resized, without its state monitor
NETWORKS["cobahh"] = _resized("cobahh.py", {
    "NeuronGroup(400,": "NeuronGroup({size},",
    "neurons[:320], neurons[320:]": "neurons[:int(0.8*{size})], neurons[int(0.8*{size}):]",
    "state = StateMonitor(neurons, ['v', 'alpha_m'], record=True)": "",
    "run(30 * ms)": "run({duration}*second)"})

# Izhikevich 2003, Fig. 3 (all-to-all, two pathways, randn() noise), without its state monitor
NETWORKS["izhikevich"] = _resized("izhikevich.py", {
    "n_exc, n_inh = 80, 20": "n_exc = int(0.8*{size})\nn_inh = {size} - n_exc",
    "state = StateMonitor(neurons, ('v', 'I', 'I_noise'), record=True, order=1)": "",
    "run(200*ms)": "run({duration}*second)"})


def simulation(network, size, duration):
    from bridge.app.brian2_scripts import from_brian2

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{network}.py"
        path.write_text(NETWORKS[network].format(size=size, duration=duration))
        return from_brian2(path)


def run_torch(plan, dtype, batch, compiled, device, threads=0, repeats=1, margins=True):
    """`compiled`: StepwiseNetwork(compile=True), the step through torch.compile; its compilation (and a re-run
    with room for more events, if any) in a first run, listed with building. `threads`: torch's CPU threads (0: its default); `repeats` > 1: a warm-up run, then the best of
    that many; `margins`: whether the run keeps the threshold margins. On a GPU, the time waits for the device's
    work to end."""
    import torch
    import torch_models
    from step_floor import synchronize  # bench/, beside this script

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    options = {"compile": True} if compiled else {}  # none for --compare-with an older checkout
    module = torch_models.compile(plan, "stepwise", dtype=dtype, device=device, **options)
    variants = {}
    if batch > 1:  # variants: the first population's first parameter from -10 % to +10 %
        population = next(iter(plan.populations.values()))
        name, value = next(iter(population.constants.items()))
        variants = {f"{population.name}.{name}": value * torch.linspace(0.9, 1.1, batch, device=device)}
    run = lambda: module(batch_size=batch, variants=variants, **({} if margins else {"margins": False}))
    with torch.no_grad():
        if compiled or repeats > 1:
            run()
        synchronize(device)
        built = time.perf_counter()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = run()
            synchronize(device)
            times.append(time.perf_counter() - started)
    spikes = int(sum(s.sum() for s in result.spikes.values()))
    return {"build_s": built - start, "run_s": min(times), "spikes": spikes / batch,
            "us_per_step": min(times) / plan.n_steps * 1e6}


def run_brian(plan, target):
    import brian2
    from brian2 import Network, second
    from brian_models.network import build

    start = time.perf_counter()
    if target == "cpp_standalone":
        brian2.set_device("cpp_standalone", directory=tempfile.mkdtemp(prefix="bench_"), build_on_run=True)
    else:
        brian2.prefs.codegen.target = target
    objects, monitors, _ = build(plan, target)
    network = Network(*objects.values(), *monitors.values())
    if target != "cpp_standalone":
        network.run(0 * second)  # code generation and compilation, listed apart
    built = time.perf_counter()
    network.run(plan.n_steps * plan.dt * second)
    total = time.perf_counter() - built
    spikes = int(sum(len(m.i) for name, m in monitors.items() if name.startswith("spikes_")))
    run_s = float(brian2.device._last_run_time) if target == "cpp_standalone" else total
    return {"build_s": built - start + (total - run_s), "run_s": run_s, "spikes": spikes}


def child(network, size, backend, dtype, batch, duration, device, threads, repeats, margins):
    from bridge.plan import lower

    plan = lower(simulation(network, size, duration))
    n_synapses = sum(len(p.i) for p in plan.projections.values())
    on_torch = backend.startswith("torch")
    result = run_torch(plan, dtype, batch, backend == "torch-compiled", device, threads, repeats, margins) \
        if on_torch else run_brian(plan, backend)
    print("RESULT " + json.dumps({"network": network, "size": size, "backend": backend, "dtype": dtype,
                                  "batch": batch, "duration_s": duration, "synapses": n_synapses,
                                  "device": device if on_torch else "cpu", **result}))


def measure(args, network, size, backend, dtype, batch, code=None):
    """One configuration in its own process; `code`: another checkout whose packages it imports."""
    command = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", network, str(size), backend, dtype,
               str(batch), str(args.duration), args.device, str(args.threads), str(args.repeats), str(args.margins)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"PYTHONPATH": str(Path(code).resolve())} if code else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        own = done.stderr.split("\tCommand being timed")[0].strip().splitlines()  # before /usr/bin/time's report
        return {"network": network, "size": size, "backend": backend, "dtype": dtype, "batch": batch,
                "error": own[-1] if own else f"exit {done.returncode}"}
    result = {**json.loads(lines[-1][len("RESULT "):]), "code": code or "this checkout"}
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    result["peak_mb"] = peak_kb / 1024
    result["s_per_simulated_s"] = result["run_s"] / args.duration
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 4000])
    parser.add_argument("--duration", type=float, default=0.2, help="simulated seconds per run")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--compare-with", metavar="CHECKOUT", help="also run torch from another checkout (e.g. "
                        "a clone of an earlier commit), side by side")
    parser.add_argument("--device", default="cpu", help="torch's device (cuda on a GPU machine); Brian2 runs on "
                                                          "the CPU")
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (default: torch's own)")
    parser.add_argument("--repeats", type=int, default=1, help="torch: more than 1: a warm-up run, then the best "
                                                              "of that many")
    parser.add_argument("--no-margins", dest="margins", action="store_false", help="torch runs keep no threshold "
                                                                                   "margins")
    parser.add_argument("--out", default="bench/results/simulate")
    parser.add_argument("--child", nargs=10, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        network, size, backend, dtype, batch, duration, device, threads, repeats, margins = args.child
        return child(network, int(size), backend, dtype, int(batch), float(duration), device, int(threads),
                     int(repeats), margins == "True")
    rows = []
    for network in args.networks:
        for size in args.sizes:
            configurations = [(b, "float64", 1) for b in args.backends if not b.startswith("torch")]
            codes = [None, args.compare_with] if args.compare_with else [None]
            if "torch" in args.backends:
                configurations += [("torch", d, n, code) for d in args.dtypes for n in args.batches for code in codes]
            if "torch-compiled" in args.backends:
                configurations += [("torch-compiled", d, n) for d in args.dtypes for n in args.batches]
            for backend, dtype, batch, *code in configurations:
                row = measure(args, network, size, backend, dtype, batch, *code)
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "results.json.partial"
    partial.write_text(json.dumps(rows, indent=1))
    partial.replace(out / "results.json")
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
