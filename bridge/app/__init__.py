"""The application layer: what people run on top of the core (description, plan) and the two backends: the
command line, paired runs and their comparison, sweeps, plots, the import of Brian2 scripts, files written
atomically. The core (bridge/*.py) and the backends never import it."""
