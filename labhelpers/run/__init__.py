"""A run of the series: the run folder, a lesson's inputs, training and resuming, LoRA, generation, tracking, and the
hand-off of the tuned model.
"""
