"""The description's naming conventions, decoded here only: record keys `"owner.variable"`, the neuron
variables synaptic code names with a suffix (`x_post` of the target, `x_pre` of the source), and the names
under which an exported Brian2 script lists spikebridge's random inputs for its import."""

NEURON_SIDES = {"_post": "target", "_pre": "source"}
POISSON_REGISTRY = "SPIKEBRIDGE_POISSON"  # {name: (rate, seed)} of PoissonTrains
POISSON_INPUT_REGISTRY = "SPIKEBRIDGE_POISSON_INPUTS"  # {name: (variable, n, rate, weight, seed)} of PoissonInputs


def record_key(key):
    """'population.variable' -> (population, variable)."""
    population, _, variable = key.partition(".")
    return population, variable


def neuron_variable(name):
    """A name in synaptic code: ('target', x) for `x_post`, ('source', x) for `x_pre`, None otherwise."""
    for suffix, side in NEURON_SIDES.items():
        if name.endswith(suffix):
            return side, name[:-len(suffix)]
    return None


def delay_owner(delay_variable):
    """Where a projection's delay variable lives: (side, variable), side 'target', 'source' or 'synapse'."""
    return neuron_variable(delay_variable) or ("synapse", delay_variable)
