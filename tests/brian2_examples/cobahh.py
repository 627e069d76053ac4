"""Conductance-based Hodgkin-Huxley network (Brette et al. 2007, COBAHH), written the usual way: rate functions
as subexpressions. Shortened from Brian2's examples/COBAHH.py for tests: 400 neurons, 30 ms."""
from brian2 import *

seed(11)
area = 20000 * umetre**2
Cm = 1 * ufarad * cm**-2 * area
gl = 5e-5 * siemens * cm**-2 * area
El, EK, ENa = -60 * mV, -90 * mV, 50 * mV
g_na = 100 * msiemens * cm**-2 * area
g_kd = 30 * msiemens * cm**-2 * area
VT = -63 * mV
taue, taui = 5 * ms, 10 * ms
Ee, Ei = 0 * mV, -80 * mV
we, wi = 6 * nS, 67 * nS

model = '''
dv/dt = (gl*(El - v) + ge*(Ee - v) + gi*(Ei - v) - g_na*m**3*h*(v - ENa) - g_kd*n**4*(v - EK))/Cm : volt
dm/dt = alpha_m*(1 - m) - beta_m*m : 1
dn/dt = alpha_n*(1 - n) - beta_n*n : 1
dh/dt = alpha_h*(1 - h) - beta_h*h : 1
dge/dt = -ge/taue : siemens
dgi/dt = -gi/taui : siemens
alpha_m = 0.32/mV*4*mV/exprel((13*mV - v + VT)/(4*mV))/ms : Hz
beta_m = 0.28/mV*5*mV/exprel((v - VT - 40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV - v + VT)/(18*mV))/ms : Hz
beta_h = 4/(1 + exp((40*mV - v + VT)/(5*mV)))/ms : Hz
alpha_n = 0.032/mV*5*mV/exprel((15*mV - v + VT)/(5*mV))/ms : Hz
beta_n = 0.5*exp((10*mV - v + VT)/(40*mV))/ms : Hz
'''
neurons = NeuronGroup(400, model, threshold='v > -20*mV', refractory=3*ms, method='exponential_euler',
                      name='neurons')
excitatory, inhibitory = neurons[:320], neurons[320:]
to_all_e = Synapses(excitatory, neurons, on_pre='ge += we', name='excitation')
to_all_i = Synapses(inhibitory, neurons, on_pre='gi += wi', name='inhibition')
to_all_e.connect(p=0.02)
to_all_i.connect(p=0.02)
neurons.v = 'El + (randn()*5 - 5)*mV'
neurons.ge = '(randn()*1.5 + 4)*10*nS'
neurons.gi = '(randn()*12 + 20)*10*nS'
state = StateMonitor(neurons, ['v', 'alpha_m'], record=True)
spikes = SpikeMonitor(neurons)
run(30 * ms)
