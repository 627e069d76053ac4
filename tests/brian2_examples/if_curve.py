"""Input-frequency curve of leaky integrate-and-fire neurons: unconnected, each with its own constant drive v0.
Shortened from Brian2's examples/IF_curve_LIF.py for tests: 100 neurons, 300 ms."""
from brian2 import *

n = 100
tau = 10 * ms
model = '''
dv/dt = (v0 - v)/tau : volt (unless refractory)
v0 : volt
'''
group = NeuronGroup(n, model, threshold='v > 10*mV', reset='v = 0*mV', refractory=5*ms, method='exact',
                    name='lif')
group.v = 0 * mV
group.v0 = '20*mV * i / (n - 1)'
monitor = SpikeMonitor(group)
run(300 * ms)
