"""A neuron whose threshold rises by 3 mV at each spike and relaxes back to 10 mV, driven by Poisson input.
Shortened from Brian2's examples/adaptive_threshold.py for tests: 500 ms."""
from brian2 import *

model = '''
dv/dt = -v/(10*ms) : volt
dvt/dt = (10*mV - vt)/(15*ms) : volt
'''
reset = '''
v = 0*mV
vt += 3*mV
'''
neuron = NeuronGroup(1, model, threshold='v > vt', reset=reset, name='neuron')
neuron.vt = 10 * mV
drive = PoissonGroup(1, 500 * Hz, name='drive')
synapses = Synapses(drive, neuron, on_pre='v += 3*mV', name='drive_to_neuron')
synapses.connect()
state = StateMonitor(neuron, ['v', 'vt'], record=True)
crossings = SpikeMonitor(neuron)
run(500 * ms)
