"""A Simulation (lowered to its Plan) compiled to Brian2 objects, run on the numpy, cython or cpp_standalone target."""
import shutil
import tempfile

import brian2
import numpy as np
from brian2 import Network, second
from brian2.core.base import BrianObjectException

from bridge import brian_parse
from bridge.errors import DescriptionError
from bridge.names import record_key
from bridge.plan import lower
from bridge.record import Record
from brian_models import dynamic_delays
from bridge.program import NATIVE, program, state_monitors

TARGETS = ("numpy", "cython", "cpp_standalone")


def build(plan, target="numpy", native=()):
    """Brian2 objects for a Plan (bridge/plan.py): ({name: object}, monitors, delay refreshers), ready to run.
    The objects are those of the plan's Brian2 program (bridge/program.py: what an export prints), with
    spikebridge's queue installed where delays change. Each delay refresher re-reads a 'between_runs'
    projection's delay variable; call them before each run(). `native`: what Brian2 draws itself, not the plan's
    draws (bridge/program.py: NATIVE)."""
    code = program(plan, native)
    created = code.execute()
    objects, monitors = ({name: created[name] for name in names} for names in (code.objects, code.monitors))
    refreshers = []
    for proj in plan.projections.values():
        syn = objects[proj.name]
        if proj.delay_mode == "dynamic":
            dynamic_delays.install(syn.pre, _delay_reader(proj, syn), proj.rule, target)
        elif proj.delay_mode == "between_runs":
            refreshers.append(_delay_refresher(syn, _delay_reader(proj, syn), proj.rule, plan.dt))
    return objects, monitors, refreshers


def _delay_reader(proj, syn):
    """A function: synapse indices -> the current values of the projection's delay variable (seconds)."""
    side, var = proj.delay_owner
    if side == "synapse":
        values = syn.variables[var]
        return lambda synapses: values.get_value()[synapses]
    group, index = (syn.target, "_postsynaptic_idx") if side == "target" else (syn.source, "_presynaptic_idx")
    values, neuron_of = group.variables[var], syn.variables[index]
    return lambda synapses: values.get_value()[neuron_of.get_value()[synapses]]


def _delay_refresher(syn, read_delays, rule, dt):
    def refresh():
        syn.pre.delay = rule.steps(read_delays(np.arange(len(syn)))) * dt * second
    return refresh


def check_target(plan, target):
    """Refuse what a target cannot honour, naming the alternatives."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r}; allowed: {TARGETS}")
    if target != "cpp_standalone":
        return
    for proj in plan.projections.values():
        if proj.delay_mode == "dynamic":
            raise DescriptionError(f"Projection {proj.name!r}.delay_mode",
                                   "'dynamic' delays need a per-step delay read that cpp_standalone's compiled queue "
                                   "does not offer; run on target 'numpy' or 'cython', or declare 'between_runs' "
                                   "(numpy, cython) or 'static' delays")
    if len(plan.segment_lengths) > 1:
        raise DescriptionError("RunSettings.segments", "cpp_standalone runs one segment here; use segments=1, or "
                                                       "target 'numpy' or 'cython' for several")


def run(simulation, target="numpy", build_dir=None, native_noise_seed=None):
    """Run a Simulation (or its Plan) in Brian2 and return the common Record (float64, SI units).
    `native_noise_seed`: draw the noise and the Poisson inputs with Brian2's own generator, seeded so (independent
    of torch's)."""
    plan = lower(simulation)
    check_target(plan, target)
    temporary = target == "cpp_standalone" and build_dir is None
    if target == "cpp_standalone":
        build_dir = build_dir or tempfile.mkdtemp(prefix="spikebridge_")
        brian2.set_device("cpp_standalone", directory=build_dir, build_on_run=True)
    else:
        brian2.prefs.codegen.target = target
    try:
        objects, monitors, refreshers = build(plan, target, NATIVE if native_noise_seed is not None else ())
        if native_noise_seed is not None:
            brian2.seed(native_noise_seed)
        network = Network(*objects.values(), *monitors.values())
        brian_parse.freeze_long_lived_objects()
        for start, steps in zip(plan.segment_starts, plan.segment_lengths):
            for change in plan.changes.get(start, []):
                change.brian2(objects)
            for refresh in refreshers:
                refresh()
            try:
                network.run(steps * plan.dt * second)
            except BrianObjectException as err:  # e.g. a delay out of range, met by an EmissionTimeQueue
                if isinstance(err.__cause__, DescriptionError):
                    raise err.__cause__ from None
                raise
            _check_completed(network, start + steps, plan, target)
        return _record(plan, monitors)
    finally:
        if target == "cpp_standalone":
            brian2.device.reinit()
            brian2.set_device("runtime")
        if temporary:  # the build folder of a run: gone with the run
            shutil.rmtree(build_dir, ignore_errors=True)


def _check_completed(network, steps, plan, target):
    """Brian2 ends a run early, and returns normally, when it receives SIGINT (Ctrl-C); a SIGINT as the run ends
    only sets Brian2's stop flag. Either raises KeyboardInterrupt here rather than giving a truncated record or
    losing the Ctrl-C. (cpp_standalone's binary is not stopped so.) After a stop, Brian2 leaves `network.t_` a
    view of its clock's time, not a float."""
    reached = int(round(np.asarray(network.t_).item() / plan.dt))
    if target != "cpp_standalone" and (reached < steps or Network._globally_stopped):
        raise KeyboardInterrupt(f"Brian2 stopped at step {reached} of {plan.n_steps} (interrupted)")


def _events(monitor, dt):
    """(neurons, steps) of a SpikeMonitor's or EventMonitor's events."""
    return np.asarray(monitor.i[:], dtype=np.int64), np.rint(np.asarray(monitor.t_) / dt).astype(np.int64)


def _record(plan, monitors):
    dt, n_steps = plan.dt, plan.n_steps
    spikes = {}
    for pop in plan.populations.values():
        monitor = monitors.get(brian_parse.monitor_name("spikes", pop.name))
        if monitor is None:  # no threshold, no spikes
            spikes[pop.name] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
            continue
        spikes[pop.name] = _events(monitor, dt)
    for key in plan.simulation.run.events:  # a custom event recorded: its events under "population.event"
        spikes[key] = _events(monitors[brian_parse.event_monitor_name(*record_key(key))], dt)
    traces = {}
    for name, (_, _, _, variables) in state_monitors(plan).items():
        for key, variable in variables.items():
            traces[key] = np.asarray(getattr(monitors[name], variable + "_")).T.astype(np.float64)
    return Record("brian2", dt, n_steps, spikes, traces)
