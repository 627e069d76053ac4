"""Neurons coupled by gap junctions: a (summed) current through every pair. Shortened from Brian2's
examples/synapses/gapjunctions.py for tests: 10 neurons, 200 ms."""
from brian2 import *

n = 10
v0 = 1.05
tau = 10 * ms
model = '''
dv/dt = (v0 - v + Igap)/tau : 1
Igap : 1  # gap junction current
'''
neurons = NeuronGroup(n, model, threshold='v > 1', reset='v = 0', name='neurons')
neurons.v = 'i * 1.0 / (n - 1)'
junctions = Synapses(neurons, neurons, '''
                     w : 1  # gap junction conductance
                     Igap_post = w*(v_pre - v_post) : 1 (summed)
                     ''', name='junctions')
junctions.connect()
junctions.w = 0.02
trace = StateMonitor(neurons, ['v', 'Igap'], record=True)
run(200 * ms)
