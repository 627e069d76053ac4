"""Spike-timing-dependent plasticity with event-driven traces (Song, Miller & Abbott 2000): Poisson inputs onto
one conductance-based neuron. Shortened from Brian2's examples/synapses/STDP.py for tests: 1000 inputs, 1 s, the weights recorded."""
from brian2 import *

seed(3)
N = 1000
taum, taupre, taupost = 10 * ms, 20 * ms, 20 * ms
Ee, vt, vr, El = 0 * mV, -54 * mV, -60 * mV, -74 * mV
taue = 5 * ms
F = 15 * Hz
gmax = 0.01
dApre = 0.01
dApost = -dApre * taupre / taupost * 1.05
dApost *= gmax
dApre *= gmax

model = '''
dv/dt = (ge*(Ee - v) + El - v)/taum : volt
dge/dt = -ge/taue : 1
'''
inputs = PoissonGroup(N, rates=F, name='inputs')
neuron = NeuronGroup(1, model, threshold='v > vt', reset='v = vr', method='euler', name='neuron')
neuron.v = vr
plastic = Synapses(inputs, neuron,
                   '''w : 1
                   dApre/dt = -Apre/taupre : 1 (event-driven)
                   dApost/dt = -Apost/taupost : 1 (event-driven)''',
                   on_pre='''ge += w
                   Apre += dApre
                   w = clip(w + Apost, 0, gmax)''',
                   on_post='''Apost += dApost
                   w = clip(w + Apre, 0, gmax)''', name='plastic')
plastic.connect()
plastic.w = 'rand()*gmax'
state = StateMonitor(neuron, "v", record=True)
weights = StateMonitor(plastic, "w", record=True)
spikes = SpikeMonitor(neuron)
run(1 * second)
