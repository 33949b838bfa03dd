"""vqe: restoring video crushed by very low-bitrate compression.

The package is the tested core behind the DVC pipeline and the notebooks: data synthesis
(`vqe.data`), metrics (`vqe.metrics`), baselines, evaluation and the `vqe` command line.
"""

__version__ = "0.1.0"
