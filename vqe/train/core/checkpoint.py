"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (temp file, then rename), so a run killed with SIGKILL at any moment leaves
either the previous checkpoint or the new one, never half of one. A fingerprint of the run's
configuration and data is stored with it: a checkpoint from a different configuration is ignored
rather than resumed.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from vqe.util.atomic import atomic_path


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able configuration (and e.g. the data manifest's hash)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path, expected_fingerprint: str) -> Optional[dict[str, Any]]:
    """The checkpoint at `path` if it exists and belongs to this configuration, else None."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("fingerprint") == expected_fingerprint else None


def source_digest(*paths: str | Path) -> str:
    """Hash of the Python sources under `paths`: a code change invalidates old checkpoints too."""
    h = hashlib.sha256()
    for root in paths:
        root = Path(root)
        for f in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def code_digest() -> str:
    """The code a training checkpoint depends on: a fix to a model, the loop or the data must not
    resume stale weights."""
    pkg = Path(__file__).resolve().parents[2]  # vqe/
    return source_digest(pkg / "models", pkg / "train", pkg / "losses.py", pkg / "data" / "dataset.py")
