"""labhelpers: plumbing and sanity checks for the sft-lab notebooks.

The lessons (masking, packing, the training loop) live in the notebooks; this package holds
what is not the lesson, on floors that import only downwards (tests/test_imports.py):

    checks/   the TODO feedback, one module per notebook
    series/   the series' reference run (06's run, watched as 06 watches it) for notebooks that need the tuned model
    sanity/   the sanity assistant: dataset, config, preflight, monitor, samples while training, postflight, protocol,
              the broken-run clinic (notebook 14's cases)
    views/    what students look at: tables, plots, live curves, widgets, progress
    measure/  what a reply is worth: house format, cut and looping replies, comparisons
    run/      the run folder, a lesson's inputs, training, LoRA, generation, the hand-off
    model/    the hardware recipe, loading the model, attention, memory
    data/     datasets, formats, the chat template, which turn owns a token
    base/     text, hub ids, API drift, installed versions, batch arithmetic
"""

__version__ = "0.1.0"
