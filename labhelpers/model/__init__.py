"""The model on this machine: the hardware recipe (device, precision, sizes), loading the model offline or from the
hub, attention kernels, the memory estimate.
"""
