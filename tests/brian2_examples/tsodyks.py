"""Dynamic synapses (Tsodyks, Pawelzik & Markram 1998): depressing and facilitating synapses with clock-driven
resources, summed into the neuron's synaptic current. Shortened from Brian2's
examples/frompapers/Tsodyks_Pawelzik_Markram_1998.py for tests: panels A (depression, 20 Hz) and B
(facilitation, 20 Hz) side by side, 600 ms."""
from brian2 import *

neurons = NeuronGroup(2, '''
                      tau_mem : second
                      I_syn : amp
                      R_in : ohm
                      dv/dt = -v/tau_mem + (R_in*I_syn)/tau_mem : volt
                      ''', method='exact', name='neurons')
neurons.tau_mem = [40, 60] * ms
neurons.R_in = [100 * Mohm, 1 * Gohm]
times = np.arange(100, 500, 50) * ms
stimulus = SpikeGeneratorGroup(2, [0, 1] * len(times), np.repeat(times, 2), name='stimulus')
synapses = Synapses(stimulus, neurons, '''
                    dx/dt = z/tau_rec : 1 (clock-driven)  # recovered
                    dy/dt = -y/tau_inact : 1 (clock-driven)  # active
                    du/dt = -u/tau_facil : 1 (clock-driven)
                    A_SE : amp
                    U_SE : 1
                    tau_inact : second
                    tau_rec : second
                    tau_facil : second
                    z = 1 - x - y : 1  # inactive
                    I_syn_post = A_SE*y : amp (summed)
                    ''', on_pre='''
                    u += U_SE*(1 - u)
                    y += u*x  # y first
                    x += -u*x
                    ''', method='exponential_euler', name='synapses')
synapses.connect(j='i')
synapses.x = 1  # fully recovered
synapses.tau_inact = [3, 1.5] * ms
synapses.A_SE = [250, 1540] * pA
synapses.U_SE = [0.6, 0.03]
synapses.tau_rec = [800, 130] * ms
synapses.tau_facil = [1e-3, 530] * ms  # panel A: facilitation negligible
state = StateMonitor(neurons, 'v', record=True)
resources = StateMonitor(synapses, ['x', 'y', 'u'], record=True)
run(600 * ms)
