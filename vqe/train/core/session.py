"""What every training run shares, whatever it trains: the base each phase runs on.

A `Session` owns the set-up (its processes, DDP under torchrun, and its data), the checkpoint fingerprint
(so that a run never resumes on other data or another configuration), resuming and training on the shared
loop (`vqe.train.core.loop.fit`, with `fingerprint`), the validator, and the end of the run (the summary's host fields and the exported model).
Each phase (Stage A, Stage B, the NoGAN sub-phases, every baseline) supplies only its model, its step and
its losses, as a `vqe.train.core.loop.Phase`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vqe.config import Params
from vqe.data.manifest import Manifest
from vqe.train.core import checkpoint, distributed
from vqe.train.core.distributed import Dist
from vqe.train.core.loop import export
from vqe.train.core.validate import Validator
from vqe.util.fetch import sha256sum


@dataclass
class Session:
    dist: Dist
    manifest: Manifest
    data_sha256: str  # the manifest's sha256, or the one a resumed release started on (`vqe release --data-rebuilt`)
    seed: int
    scale: int  # synth.scale
    profile: str  # profile_name, recorded with the exported model
    kbps: Optional[float]  # the bitrate every phase validates at (None: every rate, see `session`)

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` as run: a DDP wrapper under torchrun (the module itself in one process)."""
        return DistributedDataParallel(module) if self.dist.world > 1 else module

    def validator(self, n: int, *, low_res: bool, frames: int, consecutive: bool = False,
                  enabled: bool = True) -> Optional[Validator]:
        """The validation frames of the run (on the main process only; None elsewhere or when not `enabled`)."""
        if not (self.dist.main and enabled):
            return None
        return Validator(self.manifest, n, low_res=low_res, kbps=self.kbps, frames=frames,
                         device=self.dist.device, consecutive=consecutive)

    def fingerprint(self, name: str, *config: Any) -> str:
        """What a checkpoint must match to be resumed: the phase, its configuration, the seed, the scale, the
        data, the processes and the training code."""
        return checkpoint.fingerprint(name, *config, self.seed, self.scale, self.data_sha256, self.dist.world,
                                      checkpoint.code_digest())

    def describe(self) -> dict[str, Any]:
        """Where the run ran, for its summary."""
        return {"device": str(self.dist.device), "processes": self.dist.world, "threads": torch.get_num_threads()}

    def finish(self, final: nn.Module, summary: dict[str, Any], model_path: str | Path,
               summary_path: Optional[str | Path]) -> dict[str, Any]:
        """Add where the run ran to `summary`, and export `final` with it (the main process writes)."""
        summary.update(self.describe())
        if self.dist.main:
            export(model_path, final, summary, summary_path, profile=self.profile)
        return summary


@contextmanager
def session(params: Params, device: str, data_sha256: Optional[str] = None) -> Iterator[Session]:
    """Set up the processes on `device` and load `synth.out_dir`'s manifest; tear the processes down after.

    Every phase validates at the main test bitrate, unless training data is encoded at a CRF (then at every rate).
    """
    synth = params.synth
    kbps = None if synth.train_crf is not None or synth.crf is not None else params.eval.main_kbps
    dist = distributed.setup(device)
    try:
        manifest = Manifest.load(synth.out_dir)
        yield Session(dist, manifest, data_sha256 or sha256sum(manifest.root / "manifest.json"), params.seed,
                      synth.scale, params.profile_name, kbps)
    finally:
        distributed.teardown()
