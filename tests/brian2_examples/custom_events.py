"""Custom events, after Brian2's examples/advanced/custom_events.py: Poisson input drives g of a neuron G;
G spikes when v crosses 1, and its custom event 'gspike' fires when g rises above 1 (once, until g falls below
1: 'end_gspike' re-arms it). Spikes of G raise x of H through the pathway 'pre', gspike events raise y
through the pathway 'gpath'. Shortened to 200 ms."""
from brian2 import *

defaultclock.dt = 0.1*ms
inp = PoissonGroup(1, rates=250*Hz, name='inp')
G = NeuronGroup(1, '''dv/dt = (g - v)/(50*ms) : 1
                      dg/dt = -g/(10*ms) : 1
                      allow_gspike : boolean''',
                threshold='v > 1', reset='v = 0; g = 0; allow_gspike = True',
                events={'gspike': 'g > 1 and allow_gspike', 'end_gspike': 'g < 1 and not allow_gspike'},
                name='G')
G.run_on_event('gspike', 'allow_gspike = False')
G.run_on_event('end_gspike', 'allow_gspike = True')
G.allow_gspike = True
H = NeuronGroup(1, '''dx/dt = -x/(10*ms) : 1
                      dy/dt = -y/(10*ms) : 1''', name='H')
feed = Synapses(inp, G, on_pre='g += 0.5', name='feed')
feed.connect()
links = Synapses(G, H, on_pre={'pre': 'x += 1', 'gpath': 'y += 1'}, on_event={'pre': 'spike', 'gpath': 'gspike'},
                 name='links')
links.connect()
states_G = StateMonitor(G, ('v', 'g', 'allow_gspike'), record=True)
states_H = StateMonitor(H, ('x', 'y'), record=True)
run(200*ms)
