"""Random Brian2 scripts over the constructs the importer accepts (issue 28): two groups with nonlinear
equations (functions of Brian2's code table with arguments where the alternatives differ: int() of negative
numbers, clip, sign, floor, abs, exp), synaptic code beyond `x_post += w` on pre and post pathways, delays on
either side, summed variables, subsets recorded. Nothing is drawn during the run (rand() sets initial values
only), so the script's own Brian2 run is the reference. Used by tests/test_script_import.py (a fixed seed set)
and bench/random_models.py (a longer run)."""
import numpy as np

DRIFTS = ["1.1 - v", "clip(2*u - v, -1, 1.5)", "sign(u - 0.3)*0.8 - 0.2*v", "int(3*u - 1.5)*0.4 - v",
          "exp(-abs(u))*1.3 - v", "floor(4*u)/3 - 0.5*v", "abs(u - 0.5) + 0.2 - v"]
RECOVERIES = ["(v - u)/3", "0.2*sign(v - u)", "clip(v, 0, 1) - u", "int(v*2 - 0.5)*0.3 - u"]
ON_PRE = ["v_post += w", "v_post += w*sign(u_pre - 0.4)", "u_post += int(w*4 - 2)*0.05",
          "v_post += clip(w - u_post, -0.2, 0.3)"]
ON_POST = ["", "w = clip(w + 0.05*(u_pre - 0.5), 0, 1)", "w = abs(w - 0.1*floor(3*v_post))"]
RESETS = ["v = 0", "v = 0; u += 0.1", "v = int(-2.5 + 3*u)*0.1"]


def script(seed):
    """The text of random script `seed`, and {(its monitor, variable): the record key the import gives}."""
    rng = np.random.default_rng(seed)
    choose = lambda options: options[rng.integers(len(options))]
    method = choose(["euler", "rk2"])
    summed = rng.random() < 0.5
    neuron = lambda extra="": (f"dv/dt = ({choose(DRIFTS)}{extra})/({rng.uniform(4, 12):.3f}*ms) : 1\n"
                               f"du/dt = ({choose(RECOVERIES)})/({rng.uniform(8, 30):.3f}*ms) : 1")
    post = choose(ON_POST)
    pre_delay, post_delay = rng.uniform(0, 3), rng.uniform(0, 2)
    lines = [
        "from brian2 import *",
        f"seed({seed})",
        f"A = NeuronGroup({rng.integers(3, 9)}, '''{neuron()}''', threshold='v > {rng.uniform(0.6, 0.9):.3f}',",
        f"                reset='{choose(RESETS)}', refractory={rng.integers(0, 3)}*ms, method='{method}', name='A')",
        f"B = NeuronGroup({rng.integers(2, 7)}, '''{neuron(' + I') + chr(10) + 'I : 1' if summed else neuron()}''',",
        f"                threshold='v > 0.8', reset='{choose(RESETS)}', method='{method}', name='B')",
        "A.v, A.u = 'rand()', 'rand()'",
        "B.v, B.u = 'rand()*0.5', 'rand()'",
        "S = Synapses(A, B, '''w : 1" + ("\n                    I_post = w*u_pre : 1 (summed)" if summed else "")
        + "''',",
        f"             on_pre='{choose(ON_PRE)}'" + (f", on_post='{post}'" if post else "") + ", name='S')",
        f"S.connect(p={rng.uniform(0.3, 0.9):.2f})",
        "S.w = 'rand()*0.6'",
        f"S.delay = '{pre_delay:.2f}*ms*rand()'" if rng.random() < 0.5 else f"S.delay = {pre_delay:.2f}*ms",
    ]
    if post:
        lines.append(f"S.post.delay = {post_delay:.2f}*ms")
    lines += ["records = StateMonitor(B, ['v', 'u'], record=[0, 1])",
              "weights = StateMonitor(S, 'w', record=True, dt=1*ms)",
              "run(60*ms)"]
    return "\n".join(lines) + "\n", {("records", "v"): "B.v[0, 1]", ("records", "u"): "B.u[0, 1]",
                                     ("weights", "w"): "S.w every 0.001*second"}
