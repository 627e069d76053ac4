"""NMDA-like nonlinear synapses: clock-driven synaptic conductances, summed into the neuron. Shortened from
Brian2's examples/synapses/nonlinear.py for tests: 300 ms."""
from brian2 import *

a = 1 / (10 * ms)
b = 1 / (10 * ms)
c = 1 / (10 * ms)
inputs = NeuronGroup(2, 'dv/dt = 1/(10*ms) : 1', threshold='v > 1', reset='v = 0', method='euler', name='inputs')
neuron = NeuronGroup(1, '''dv/dt = (g - v)/(10*ms) : 1
                           g : 1''', method='linear', name='neuron')
nmda = Synapses(inputs, neuron, '''
                dg_syn/dt = -a*g_syn + b*x*(1 - g_syn) : 1 (clock-driven)
                g_post = g_syn : 1 (summed)
                dx/dt = -c*x : 1 (clock-driven)
                w : 1  # synaptic weight
                ''', on_pre='x += w', name='nmda')
nmda.connect()
nmda.w = [1., 10.]
inputs.v = [0., 0.5]
synaptic = StateMonitor(nmda, 'g_syn', record=True)
total = StateMonitor(neuron, ['v', 'g'], record=True)
run(300 * ms)
