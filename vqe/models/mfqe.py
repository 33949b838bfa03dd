"""MFQE 2.0 (Guan, Xing, Xu et al., "MFQE 2.0: A new approach for multi-frame quality enhancement on compressed
video", TPAMI 2019), the Table 1 baseline of seed 000 §IV-C ("a multi-frame enhancement model trained on
compressed inputs"). Written from the paper's description and the public TensorFlow code (RyanXingQL/MFQEv2.0,
net_MFCNN.py and its README).

Compressed video fluctuates in quality from frame to frame. MFQE enhances every frame with its two nearest
peak-quality frames (PQFs: frames of higher PSNR than both neighbours):

* **PQF detector** (`PQFDetector`): a bidirectional LSTM over per-frame coding features, one PQF probability per
  frame. MFQE 2.0's 38 features are 36 no-reference quality features (NIQE's) plus the frame's QP and bits. Ours
  are the bitstream's only (`vqe.data.bitstream.frame_stats`): mean macroblock QP, log2 bits and the picture type
  (I / P / B one-hot). NIQE's features need frames of at least 192 x 192 pixels and our decoded frames are
  180 pixels high; MFQE's README names the QP the most important of the 38 values. Trained on the PSNR labels of
  the training encodes (`pqf_labels`, as MFQE) with a class-balanced BCE; a frame is a PQF at probability > 0.5.
* **MC-subnet** (`MotionCompensation`): MFQE's coarse-to-fine spatial-transformer motion compensation on the
  luminance: a x4-down flow (two stride-2 convs, tanh, pixel shuffle), a x2-down refinement, a full-resolution
  refinement, each warping the PQF onto the frame to enhance.
* **QE-subnet** (`QualityEnhancement`): MFQE's network for high QPs (`network`, for QP 37 / 42; ours are 40-51):
  3x3, 5x5 and 7x7 convs (32 each, PReLU) on each of the three luminance frames, a densely connected stack of five
  3x3 convs with batch norm and PReLU, a last conv to one channel, added to the frame's luminance.
  MFQE 2.0 trains separate networks for PQFs and non-PQFs: `qe_pqf`, `qe_other`, picked by the frame's label.

How ours runs in this repository's model contract (`forward(x, side)`, sliding windows of 2n+1 frames):

* `side` is (B, 2n+1), the PQF label of each window frame (`frame_side` computes them from the bitstream with the
  detector; training uses the PSNR labels, as MFQE does). The previous PQF is the nearest labelled frame before the
  centre inside the window, the next the nearest after it; with none, the frame itself stands in (MFQE's own fix
  for the first and last frames). `n` = 4: PQFs of our encodes are 2.6-4.5 frames apart on average.
* Luminance only, as MFQE (BT.601 weights). A change of Y with Cb, Cr kept adds the same amount to R, G and B,
  so the enhanced frame is the decoded RGB plus the residual on every channel.
* x2 (seed 000 scores every row at the source size): MFQE enhances at the decoded size; the output is the
  enhanced frame bicubic up-sampled (`vqe.util.upscale.bicubic_up`), trained end to end through it.
* Choices: flows are tanh x `max_flow` decoded pixels (MFQE's transformer scales its tanh output itself); the
  last conv has no batch norm or PReLU (MFQE's `c6` has both) and starts at zero, so an untrained model is the
  bicubic input (the repo convention); all convs are 2-D.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqe.data.bitstream import frame_stats
from vqe.data.manifest import EncodeEntry, Manifest
from vqe.models.parts.flow import warp
from vqe.util.upscale import bicubic_up

log = logging.getLogger(__name__)

FEATURES = 5  # mean QP / 51, log2(bits) / 20, I, P, B
LUMA = (0.299, 0.587, 0.114)  # BT.601


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, h, w) RGB -> (..., 1, h, w) BT.601 luminance."""
    w = rgb.new_tensor(LUMA).view(3, 1, 1)
    return (rgb * w).sum(-3, keepdim=True)


# --- PQF labels and detection ---------------------------------------------------------------------------------


def pqf_labels(psnr: np.ndarray) -> np.ndarray:
    """MFQE's ground-truth PQFs: frames whose PSNR is higher than both neighbours' (the first and last frames
    against their one neighbour)."""
    p = np.asarray(psnr, np.float64)
    if len(p) < 2:
        return np.ones(len(p), bool)
    prev = np.r_[-np.inf, p[:-1]]
    nxt = np.r_[p[1:], -np.inf]
    return (p > prev) & (p > nxt)


def detector_features(qp: np.ndarray, bits: np.ndarray, types: list[str]) -> np.ndarray:
    """(T, 5) float32 coding features of a clip's frames (`vqe.data.bitstream.FrameStats` fields)."""
    onehot = np.array([[t == k for k in "IPB"] for t in types], np.float32).reshape(len(types), 3)
    return np.column_stack([np.asarray(qp) / 51.0, np.log2(np.maximum(bits, 1)) / 20.0, onehot]).astype(np.float32)


class PQFDetector(nn.Module):
    """(B, T, 5) coding features -> (B, T) PQF logits: a bidirectional LSTM and a linear read-out (MFQE 2.0's)."""

    def __init__(self, hidden: int = 32, layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, hidden, layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(feats)[0]).squeeze(-1)


# --- MC-subnet ------------------------------------------------------------------------------------------------


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2), nn.PReLU(c_out))


class MotionCompensation(nn.Module):
    """(frame, reference) luminance (N, 1, h, w), h and w multiples of 4 -> the reference warped onto the frame;
    MFQE's three levels: x4 down, x2 down, full resolution, each adding to the flow."""

    def __init__(self, channels: int = 24, max_flow: float = 16.0) -> None:
        super().__init__()
        c = channels
        self.max_flow = max_flow
        self.coarse = nn.Sequential(_conv(2, c, 5, 2), _conv(c, c, 3), _conv(c, c, 5, 2), _conv(c, c, 3),
                                    nn.Conv2d(c, 2 * 16, 3, padding=1), nn.Tanh(), nn.PixelShuffle(4))
        self.fine = nn.Sequential(_conv(5, c, 5, 2), _conv(c, c, 3), _conv(c, c, 3), _conv(c, c, 3),
                                  nn.Conv2d(c, 2 * 4, 3, padding=1), nn.Tanh(), nn.PixelShuffle(2))
        self.full = nn.Sequential(_conv(5, c, 3), _conv(c, c, 3), _conv(c, c, 3), _conv(c, c, 3),
                                  nn.Conv2d(c, 2, 3, padding=1), nn.Tanh())

    def forward(self, frame: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        h, w = frame.shape[-2:]
        ph, pw = -h % 4, -w % 4
        pair = torch.cat((frame, ref), 1)
        if ph or pw:
            pair = F.pad(pair, (0, pw, 0, ph), mode="replicate")
        ref_p = pair[:, 1:]
        flow = self.coarse(pair) * self.max_flow
        flow = flow + self.fine(torch.cat((pair, flow, warp(ref_p, flow)), 1)) * self.max_flow
        flow = flow + self.full(torch.cat((pair, flow, warp(ref_p, flow)), 1)) * self.max_flow
        return warp(ref_p, flow)[..., :h, :w]


# --- QE-subnet ------------------------------------------------------------------------------------------------


class QualityEnhancement(nn.Module):
    """(previous PQF warped, frame, next PQF warped) luminance, each (N, 1, h, w) -> the frame's residual."""

    def __init__(self, channels: int = 32, dense: int = 5) -> None:
        super().__init__()
        c = channels
        self.scales = nn.ModuleList(nn.ModuleList(_conv(1, c, k) for k in (3, 5, 7)) for _ in range(3))
        self.dense = nn.ModuleList(
            nn.Sequential(nn.Conv2d(9 * c if i == 0 else c * i, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU(c))
            for i in range(dense))
        self.last = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.last.weight)  # untrained = no change (the repo convention)
        nn.init.zeros_(self.last.bias)

    def forward(self, prev: torch.Tensor, frame: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        feats = torch.cat([conv(y) for y, convs in zip((prev, frame, nxt), self.scales) for conv in convs], 1)
        outs = [self.dense[0](feats)]
        for layer in self.dense[1:-1]:  # MFQE: c2 sees c1; c3 sees [c1, c2]; c4 [c1, c2, c3]; c5 [c1..c4]
            outs.append(layer(outs[0] if len(outs) == 1 else torch.cat(outs, 1)))
        h = self.dense[-1](torch.cat(outs, 1)) if len(self.dense) > 1 else outs[0]
        return self.last(h)


# --- the model ------------------------------------------------------------------------------------------------


def nearest_pqfs(side: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2n+1) labels -> (index of the previous PQF, of the next PQF) in each window; the centre n when none."""
    idx = torch.arange(side.shape[1], device=side.device)
    is_pqf = side > 0.5
    before = torch.where(is_pqf & (idx < n), idx, torch.full_like(idx, -1)).amax(1)
    after = torch.where(is_pqf & (idx > n), idx, torch.full_like(idx, side.shape[1])).amin(1)
    return torch.where(before < 0, n, before), torch.where(after >= side.shape[1], n, after)


class MFQE(nn.Module):
    """x (B, 2n+1, 3, h, w) in [0, 1] and side (B, 2n+1) PQF labels -> (B, 3, h*scale, w*scale)."""

    arch = "mfqe"
    needs_side = True  # forward(x, side): per-frame PQF labels from the bitstream (`frame_side`)

    def __init__(self, scale: int = 2, *, n: int = 4, channels: int = 32, dense: int = 5, mc_channels: int = 24,
                 max_flow: float = 16.0, detector_hidden: int = 32) -> None:
        super().__init__()
        if n < 1 or channels < 1 or dense < 1 or mc_channels < 1:
            raise ValueError("MFQE needs n, channels, dense, mc_channels >= 1")
        self.config = {"n": n, "channels": channels, "dense": dense, "mc_channels": mc_channels,
                       "max_flow": max_flow, "detector_hidden": detector_hidden}
        self.n, self.scale = n, scale
        self.detector = PQFDetector(detector_hidden)
        self.mc = MotionCompensation(mc_channels, max_flow)
        self.qe_pqf = QualityEnhancement(channels, dense)
        self.qe_other = QualityEnhancement(channels, dense)
        self.last_compensated: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def forward(self, x: torch.Tensor, side: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t = x.shape[:2]
        if x.dim() != 5 or t != 2 * self.n + 1 or x.shape[2] != 3:
            raise ValueError(f"MFQE expects (B, {2 * self.n + 1}, 3, h, w), got {tuple(x.shape)}")
        if side is None or tuple(side.shape) != (b, t):
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"MFQE needs the PQF labels of the window's frames, side (B, {t}); got {got}")
        prev_i, next_i = nearest_pqfs(side, self.n)
        rows = torch.arange(b, device=x.device)
        y = luma(x)  # (B, T, 1, h, w)
        centre = y[:, self.n]
        prev = self.mc(centre, y[rows, prev_i])
        nxt = self.mc(centre, y[rows, next_i])
        self.last_compensated = (prev, nxt) if self.training else None
        is_pqf = side[:, self.n] > 0.5
        residual = torch.zeros_like(centre)
        for mask, net in ((is_pqf, self.qe_pqf), (~is_pqf, self.qe_other)):
            if mask.any():
                residual[mask] = net(prev[mask], centre[mask], nxt[mask]).to(residual.dtype)
        return bicubic_up(x[:, self.n] + residual, self.scale)

    def aux_loss(self, gt_low: torch.Tensor) -> torch.Tensor:
        """MFQE's MC loss: MSE of the last forward pass's two compensated PQFs against the raw frame's luminance
        (`gt_low`: the ground truth at the decoded size, (B, 3, h, w))."""
        if self.last_compensated is None:
            raise RuntimeError("aux_loss needs a forward pass in training mode first")
        target = luma(gt_low)
        return sum(F.mse_loss(c, target) for c in self.last_compensated) / 2

    @torch.no_grad()
    def detect(self, feats: np.ndarray) -> np.ndarray:
        """(T, 5) coding features of a whole clip -> (T,) float32 PQF labels (probability > 0.5)."""
        was = self.detector.training
        self.detector.eval()
        param = next(self.detector.parameters())
        logits = self.detector(torch.from_numpy(np.asarray(feats, np.float32))[None].to(param.device, param.dtype))
        self.detector.train(was)
        return (logits[0] > 0).float().cpu().numpy()

    def training_side(self, manifest: Manifest, seed: int) -> tuple[Callable[[EncodeEntry], np.ndarray], dict[str, Any]]:
        """The side information its training windows carry (`pqf_training`)."""
        return pqf_training(self, manifest, seed)

    def frame_side(self, stream: str | Path) -> np.ndarray:
        """The PQF labels of every frame of an H.264 bitstream, from its coding features, in display order."""

        s = frame_stats(stream)
        return self.detect(detector_features(s.qp, s.bits, s.types))


def fit_detector(detector: PQFDetector, clips: list[tuple[np.ndarray, np.ndarray]], *, steps: int = 300,
                 lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Train the detector on (features (T, 5), labels (T,)) of whole clips, one clip per step in a fixed order,
    with a class-balanced BCE (PQFs are about a third of the frames); returns its accuracy on those clips."""
    if not clips:
        raise ValueError("fit_detector: no clips")
    torch.manual_seed(seed)
    detector.train()
    opt = torch.optim.Adam(detector.parameters(), lr=lr)
    data = [(torch.from_numpy(f)[None], torch.from_numpy(lab.astype(np.float32))[None]) for f, lab in clips]
    pos = float(sum(lab.sum() for _, lab in clips)) / sum(len(lab) for _, lab in clips)
    weight = torch.tensor((1 - pos) / max(pos, 1e-6))
    for step in range(steps):
        feats, labels = data[step % len(data)]
        loss = F.binary_cross_entropy_with_logits(detector(feats), labels, pos_weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    detector.eval()
    with torch.no_grad():
        right = sum(((detector(f) > 0).float() == lab).sum().item() for f, lab in data)
    return {"accuracy": right / sum(lab.numel() for _, lab in data), "pqf_share": pos, "loss": loss.item()}


def frame_psnr(manifest: Manifest, entry: EncodeEntry) -> np.ndarray:
    """(T,) RGB PSNR of each bicubic up-scaled decoded frame against its ground truth (MFQE's quality curve)."""
    gt, lq = manifest.gt(entry.clip), manifest.lq(entry)
    mse = np.array([np.mean((gt[t].astype(np.float32) - lq[t].astype(np.float32)) ** 2) for t in range(entry.frames)])
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))


def pqf_training(model: nn.Module, manifest: Manifest, seed: int
                 ) -> tuple[Callable[[EncodeEntry], np.ndarray], dict[str, Any]]:
    """MFQE 2.0's training data: the PSNR labels of every training encode, which its QE-subnet trains on (as
    MFQE), and its detector fitted to them from the bitstream's coding features; returns (entry -> labels,
    what to record: the detector's accuracy on those encodes)."""

    entries = manifest.select("train")
    labels = {(e.clip, e.rate_id): pqf_labels(frame_psnr(manifest, e)) for e in entries}
    clips = []
    for e in entries:
        s = frame_stats(manifest.root / e.stream)
        clips.append((detector_features(s.qp, s.bits, s.types), labels[e.clip, e.rate_id]))
    record = fit_detector(model.detector, clips, seed=seed)
    log.info("PQF detector: accuracy %.3f on %d training encodes", record["accuracy"], len(clips))
    return (lambda e: labels[e.clip, e.rate_id].astype(np.float32)), {"pqf_detector": record}
