"""Sparsely connected inhibitory integrate-and-fire neurons with white noise (Brunel & Hakim 1999): irregular
firing at low rates, weakly synchronized. Shortened from Brian2's examples/frompapers/Brunel_Hakim_1999.py
for tests: 500 neurons, 100 inputs each, 100 ms."""
from brian2 import *

seed(7)
N = 500
Vr = 10 * mV
theta = 20 * mV
tau = 20 * ms
delta = 2 * ms
taurefr = 2 * ms
C = 100
sparseness = float(C) / N
J = 0.5 * mV
muext = 25 * mV
sigmaext = 1 * mV

model = '''
dV/dt = (-V + muext + sigmaext*sqrt(tau)*xi)/tau : volt
'''
group = NeuronGroup(N, model, threshold='V > theta', reset='V = Vr', refractory=taurefr, name='neurons')
group.V = Vr
connections = Synapses(group, group, on_pre='V += -J', delay=delta, name='inhibition')
connections.connect('rand() < sparseness')
spikes = SpikeMonitor(group)
rate = PopulationRateMonitor(group)
state = StateMonitor(group, 'V', record=True)
run(100 * ms)
