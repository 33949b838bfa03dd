"""What every training run opens first: its processes (DDP under torchrun), its data, and the digest that
names the data in its checkpoint fingerprint (so that a run never resumes on other data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import torch

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.train import distributed
from vqe.train.distributed import Dist
from vqe.util.fetch import sha256sum


@dataclass
class Session:
    dist: Dist
    manifest: Manifest
    data_sha256: str  # the manifest's sha256, or the one a resumed release started on (`vqe release --data-rebuilt`)

    def describe(self) -> dict[str, Any]:
        """Where the run ran, for its summary."""
        return {"device": str(self.dist.device), "processes": self.dist.world, "threads": torch.get_num_threads()}


@contextmanager
def session(params: Params, device: str, data_sha256: Optional[str] = None) -> Iterator[Session]:
    """Set up the processes on `device` and load `synth.out_dir`'s manifest; tear the processes down after."""
    dist = distributed.setup(device)
    try:
        manifest = Manifest.load(params.synth.out_dir)
        yield Session(dist, manifest, data_sha256 or sha256sum(manifest.root / "manifest.json"))
    finally:
        distributed.teardown()
