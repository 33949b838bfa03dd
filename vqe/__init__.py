"""vqe: restoring video crushed by very low-bitrate compression.

The package is the tested core behind the DVC pipeline and the notebooks: data synthesis
(`vqe.data`), models (`vqe.models`), training (`vqe.train`), metrics (`vqe.metrics`), baselines,
evaluation, `vqe enhance` and the `vqe` command line.
"""

import warnings

# tqdm.auto falls back to text bars in kernels without ipywidgets; its warning would put this
# machine's paths into every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
