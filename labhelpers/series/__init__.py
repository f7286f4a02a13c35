"""The series' shared run: notebook 06's reference run, trained the same way (sanity monitor, samples while
training, TensorBoard) wherever a later notebook needs it."""
