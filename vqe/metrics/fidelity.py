"""Per-frame fidelity to the ground truth: PSNR (RGB and luma), SSIM and MS-SSIM.

Frames are numpy uint8 arrays shaped (T, H, W, 3), RGB. Every function returns one value per
frame (shape (T,)); averaging over a clip is the caller's choice. This module also holds the
small frames-to-torch helpers the other metric modules share.

* PSNR is computed in float64 with peak 255; identical frames give +inf.
* PSNR-Y follows the super-resolution convention (BasicSR, MATLAB `rgb2ycbcr`): BT.601
  studio-range luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1], i.e. on
  the 16..235 scale, not rounded, PSNR with peak 255.
* SSIM / MS-SSIM come from pytorch-msssim (11-tap Gaussian window, sigma 1.5, K = (0.01, 0.03),
  valid convolution) on RGB with data_range 255, averaged over the three channels.
  MS-SSIM with its standard 5 scales needs frames larger than 160 px on the short side; for
  smaller frames it is undefined and we return NaN rather than a non-standard fewer-scale value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d
from pytorch_msssim.ssim import _ssim as _ssim_maps

from vqe.util.errors import VQEError

PEAK = 255.0
MS_SSIM_MIN_SIDE = 161  # pytorch-msssim: short side > (win_size - 1) * 2**4
_LUMA = np.array([65.481, 128.553, 24.966]) / 255.0

PairFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, or (None or "auto") CUDA when there is one and CPU otherwise."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_frames(frames: np.ndarray, name: str = "frames") -> np.ndarray:
    """Reject anything but the package's frame convention early, with a message naming the input."""
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
            and frames.shape[-1] == 3):
        desc = f"{getattr(frames, 'dtype', type(frames).__name__)} {getattr(frames, 'shape', '')}"
        raise VQEError(f"{name}: expected uint8 frames shaped (T, H, W, 3), got {desc}")
    return frames


def check_pair(out: np.ndarray, gt: np.ndarray) -> None:
    """Metrics compare frame by frame, so both clips must have exactly the same shape."""
    check_frames(out, "output")
    check_frames(gt, "ground truth")
    if out.shape != gt.shape:
        raise VQEError(f"output shape {out.shape} does not match ground truth shape {gt.shape}")


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) on `device`, still on the 0..255 scale.

    Uploading uint8 moves a quarter of the bytes; the permuted view stays channels-last in
    memory, which the depthwise SSIM convolutions run about twice as fast on (CPU).
    """
    return torch.from_numpy(np.array(frames, dtype=np.uint8)).to(device).permute(0, 3, 1, 2).float()


def batches(n: int, batch_size: int) -> Iterator[slice]:
    return (slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size))


def to_numpy(parts: list[torch.Tensor]) -> np.ndarray:
    """Per-batch results as one float64 array (empty when there were no batches)."""
    return torch.cat([p.reshape(-1) for p in parts]).double().cpu().numpy() if parts else np.zeros(0)


@torch.inference_mode()
def map_pairs(fn: PairFn, a: np.ndarray, b: np.ndarray, device: torch.device | str | None = None,
              batch_size: int = 8) -> np.ndarray:
    """Apply a batched per-pair torch metric frame by frame, a few frames at a time to bound memory."""
    device = resolve_device(device)
    return to_numpy([fn(to_tensor(a[s], device), to_tensor(b[s], device)) for s in batches(len(a), batch_size)])


def psnr_from_mse(mse: np.ndarray | float, peak: float = PEAK) -> np.ndarray:
    """PSNR in dB; MSE 0 gives +inf (no warning)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak * peak / np.asarray(mse, dtype=np.float64))


def luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y on the 16..235 scale, float64, shape (..., H, W)."""
    return 16.0 + frames.astype(np.float64) @ _LUMA


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b
    return float(np.mean(d * d))


def psnr(out: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame PSNR over all RGB values (float64, peak 255)."""
    check_pair(out, gt)
    return psnr_from_mse(np.array([_mse(o, g) for o, g in zip(out, gt)]))


def psnr_y(out: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame PSNR on BT.601 luma (the convention of SR papers), peak 255."""
    check_pair(out, gt)
    return psnr_from_mse(np.array([_mse(luma(o), luma(g)) for o, g in zip(out, gt)]))


def ssim_tensor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM per image of float (N, C, H, W) tensors on the 0..255 scale."""
    return _ssim(x, y, data_range=PEAK, size_average=False)


def ssim(out: np.ndarray, gt: np.ndarray, device: torch.device | str | None = None,
         batch_size: int = 8) -> np.ndarray:
    """Per-frame SSIM (Gaussian window, RGB mean)."""
    check_pair(out, gt)
    return map_pairs(ssim_tensor, out, gt, device, batch_size)


# pytorch-msssim's defaults, which `ssim`/`ms_ssim` use: 11-tap window, sigma 1.5, its five MS-SSIM weights
_WIN = _fspecial_gauss_1d(11, 1.5).repeat(3, 1, 1, 1)
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ssim_ms_ssim_tensor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(2, N): SSIM and 5-scale MS-SSIM per image of float (N, 3, H, W) tensors on the 0..255 scale.

    MS-SSIM's finest scale is the SSIM pass itself, so both come from one pass at full size where calling
    pytorch-msssim's `ssim` and `ms_ssim` would make two. This is `pytorch_msssim.ms_ssim`'s loop over its
    own `_ssim`, unchanged, and gives exactly what those two return (`tests/test_metrics.py` checks it).
    """
    weights = x.new_tensor(_MS_WEIGHTS)
    mcs = []
    for level in range(len(_MS_WEIGHTS)):
        ssim_per_channel, cs = _ssim_maps(x, y, data_range=PEAK, win=_WIN, size_average=False)
        if level == 0:
            first = ssim_per_channel.mean(1)
        if level < len(_MS_WEIGHTS) - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=padding)
            y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    levels = torch.stack(mcs + [torch.relu(ssim_per_channel)], dim=0)  # (level, batch, channel)
    return torch.stack((first, torch.prod(levels ** weights.view(-1, 1, 1), dim=0).mean(1)))


def ssim_ms_ssim(out: np.ndarray, gt: np.ndarray, device: torch.device | str | None = None,
                 batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (SSIM, MS-SSIM) in one pass; MS-SSIM is NaN when the short side is below 161 px."""
    check_pair(out, gt)
    if min(out.shape[1:3]) < MS_SSIM_MIN_SIDE:
        return ssim(out, gt, device, batch_size), np.full(len(out), np.nan)
    both = map_pairs(lambda a, b: ssim_ms_ssim_tensor(a, b).T, out, gt, device, batch_size).reshape(-1, 2)
    return both[:, 0], both[:, 1]


def ms_ssim(out: np.ndarray, gt: np.ndarray, device: torch.device | str | None = None,
            batch_size: int = 8) -> np.ndarray:
    """Per-frame 5-scale MS-SSIM; NaN when the short side is below 161 px (undefined there)."""
    check_pair(out, gt)
    if min(out.shape[1:3]) < MS_SSIM_MIN_SIDE:
        return np.full(len(out), np.nan)
    return map_pairs(lambda x, y: _ms_ssim(x, y, data_range=PEAK, size_average=False),
                     out, gt, device, batch_size)
