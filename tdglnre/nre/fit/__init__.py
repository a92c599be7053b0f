"""Training: the fit loop behind ``tdglnre train`` (:mod:`.training`) and its per-epoch callbacks (:mod:`.callbacks`).

The top of :mod:`tdglnre.nre`: it uses the network, the pipeline and the model
directory of :mod:`tdglnre.nre.infer` (metadata, checkpoints). Importing this
package imports no TensorFlow.
"""
