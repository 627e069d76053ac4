"""Izhikevich (2003), Fig. 3, after Brian2's examples/frompapers/Izhikevich_2003.py: 800 regular-spiking
excitatory and 200 fast-spiking inhibitory neurons with random parameters, all-to-all synapses with two
pathways (I += w at once, I -= w one step later), and thalamic noise drawn with randn() in run_regularly on
each subgroup. Shortened to 100 neurons (80 + 20) and 200 ms."""
import numpy as np
from brian2 import *

n_exc, n_inh = 80, 20
rng = np.random.default_rng(2003)
r_exc, r_inh = rng.uniform(size=n_exc), rng.uniform(size=n_inh)
weights = np.hstack([0.5 * rng.uniform(size=(n_exc + n_inh, n_exc)), -rng.uniform(size=(n_exc + n_inh, n_inh))]).T

defaultclock.dt = 1*ms
neurons = NeuronGroup(n_exc + n_inh, '''dv/dt = (0.04*v**2 + 5*v + 140 - u + I + I_noise)/ms : 1
                                        du/dt = a*(b*v - u)/ms : 1
                                        I : 1
                                        I_noise : 1
                                        a : 1
                                        b : 1
                                        c : 1
                                        d : 1''',
                      threshold='v >= 30', reset='v = c; u += d', method='euler', name='neurons')
neurons.v = -65
excitatory, inhibitory = neurons[:n_exc], neurons[n_exc:]
excitatory.a, excitatory.b = 0.02, 0.2
excitatory.c, excitatory.d = -65 + 15 * r_exc**2, 8 - 6 * r_exc**2
inhibitory.a, inhibitory.b = 0.02 + 0.08 * r_inh, 0.25 - 0.05 * r_inh
inhibitory.c, inhibitory.d = -65, 2
neurons.u = 'b*v'

synapses = Synapses(neurons, neurons, 'w : 1', on_pre={'up': 'I += w', 'down': 'I -= w'},
                    delay={'up': 0*ms, 'down': 1*ms}, name='synapses')
synapses.connect()
synapses.w[:] = weights.flatten()
excitatory.run_regularly('I_noise = 5*randn()', dt=1*ms, name='thalamic_exc')
inhibitory.run_regularly('I_noise = 2*randn()', dt=1*ms, name='thalamic_inh')
state = StateMonitor(neurons, ('v', 'I', 'I_noise'), record=True, order=1)
run(200*ms)
