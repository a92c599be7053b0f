"""The data pipeline: sources (HDF5 ensembles, arrays), input selection, the split, epochs as tf.data.

:mod:`.data` is its one import for the rest of the package (it re-exports
:mod:`.sources`, :mod:`.selection` and :mod:`.stream`). Importing this package
imports no TensorFlow.
"""
