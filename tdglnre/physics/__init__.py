"""Physics layer: configuration, lattice, numba kernels, NumPy reference, observables.

Never imports io, nre or TensorFlow.
"""
