"""The one table that names every architecture and every model the pipeline trains (BasicSR's
`ARCH_REGISTRY`, kept as data).

An architecture is named by its module and class, not imported: `vqe.models.build.build_model` imports
the one it builds. So code that trains or scores one model depends on that model's file alone, and so
do the DVC stages that run it (`vqe/models/<arch>.py`, where `file` points). Nothing here imports
torch or any model; `vqe.config` reads it to check parameter values.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    """An architecture: `module:cls`, built as `cls(scale=..., **config)`; `sequence`: trained on clips of
    consecutive frames (`baselines.systems.<row>.train.frames` >= 2); `impl`: it takes the deformable
    convolution's kernel choice (`impl=`) too."""

    module: str
    cls: str
    sequence: bool = False
    impl: bool = False

    @property
    def file(self) -> str:
        """The architecture's source file, relative to the repository root (a DVC dependency)."""
        return self.module.replace(".", "/") + ".py"


ARCHS: dict[str, Arch] = {
    # ours: the two-stage generator (Stage A alone, or G_B(G_A(.))) and seed 003's fast restorer
    "stage_a": Arch("vqe.models.stage_a", "StageA", impl=True),
    "generator": Arch("vqe.models.stage_b", "Generator", impl=True),
    "fast": Arch("vqe.models.fast", "FastRestorer"),
    # Table 1's learned baselines (rows of `baselines.systems` name one of these)
    "galteri": Arch("vqe.models.galteri", "Galteri"),
    "edvr": Arch("vqe.models.edvr", "EDVR"),
    "esrgan_dncnn": Arch("vqe.models.esrgan_dncnn", "ESRGANDnCNN"),
    "supervegan": Arch("vqe.models.supervegan", "SuperVEGAN"),
    "tecogan": Arch("vqe.models.tecogan", "TecoGAN", sequence=True),
    "mfqe": Arch("vqe.models.mfqe", "MFQE"),
}
OURS = ("stage_a", "generator", "fast")
BASELINE_ARCHS = tuple(a for a in ARCHS if a not in OURS)
SEQUENCE_ARCHS = frozenset(a for a, spec in ARCHS.items() if spec.sequence)

# the adversarial games of Table 1's baselines (`baselines.systems.<row>.loss.adversarial`) -> "module:function"
# returning its `vqe.models.parts.objective.Adversary`; a paper's own game is defined next to its architecture
GAMES: dict[str, str] = {
    "galteri": "vqe.models.galteri:adversary",
    "supervegan": "vqe.models.supervegan:adversary",
    "tecogan": "vqe.models.tecogan:adversary",
    "relativistic": "vqe.train.gan:relativistic_adversary",  # ESRGAN's, on our PatchGAN
}


@dataclass(frozen=True)
class Trained:
    """A model `dvc repro` trains: its architecture, the `vqe.train` module that trains it, and where the
    model goes (`{name}`: a baseline row's id)."""

    arch: str
    trainer: str
    model: str


TRAINED: dict[str, Trained] = {
    "stage_a": Trained("stage_a", "vqe.train.stage_a", "models/stage_a.pt"),
    "stage_b": Trained("generator", "vqe.train.stage_b", "models/gan_evh.pt"),
    "nogan": Trained("generator", "vqe.train.nogan", "models/nogan.pt"),
    "nogan_fast": Trained("fast", "vqe.train.nogan", "models/nogan_fast.pt"),
}
# every Table 1 baseline row (`baselines.rows`): its architecture is `baselines.systems.<row>.arch`
BASELINE = Trained("", "vqe.train.baseline", "models/{name}.pt")
