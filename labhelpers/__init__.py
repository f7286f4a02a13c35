"""labhelpers: plumbing and sanity checks for the sft-lab notebooks.

The lessons (masking, packing, the training loop) live in the notebooks; this package holds
what is not the lesson: loading the model and data offline, hardware recipes, plots, reports
and the sanity assistant (`labhelpers.sanity`).
"""

__version__ = "0.1.0"
