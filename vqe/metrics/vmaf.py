"""VMAF (Netflix) through the ffmpeg binary that `imageio-ffmpeg` ships, built with libvmaf.

PyAV's bundled FFmpeg has no libvmaf, hence the subprocess. Both clips go to ffmpeg as raw
rgb24, are converted to yuv420p by the same swscale path (as a codec would see them) and
scored with libvmaf's default model (vmaf_v0.6.1). In the libvmaf filter the first input is
the distorted clip and the second the reference (checked: swapping them scores a blurred
clip against the sharp one as ~100). libvmaf crashes on frames under 17 px on a side; there
VMAF is undefined and we return NaN, like MS-SSIM for small frames.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from vqe.metrics.fidelity import check_pair
from vqe.util.errors import VQEError

MIN_SIDE = 17  # ffmpeg 9.0.2's libvmaf segfaults on 16 px


def _raw_input(name: str, width: int, height: int, fps: float) -> list[str]:
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", name]


def vmaf(out: np.ndarray, gt: np.ndarray, fps: float = 25.0, threads: int = 2) -> tuple[float, np.ndarray]:
    """VMAF of `out` against `gt`: (pooled clip mean, per-frame scores); 0..100, higher is better."""
    check_pair(out, gt)
    frames, height, width, _ = out.shape
    if min(height, width) < MIN_SIDE:
        return float("nan"), np.full(frames, np.nan)
    with tempfile.TemporaryDirectory(prefix="vqe-vmaf-") as tmp:
        np.ascontiguousarray(out).tofile(Path(tmp) / "dist.rgb")
        np.ascontiguousarray(gt).tofile(Path(tmp) / "ref.rgb")
        graph = ("[0:v]format=yuv420p[d];[1:v]format=yuv420p[r];"
                 f"[d][r]libvmaf=log_fmt=json:log_path=vmaf.json:n_threads={threads}")
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
               *_raw_input("dist.rgb", width, height, fps), *_raw_input("ref.rgb", width, height, fps),
               "-lavfi", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)  # cwd: no path escaping
        log = Path(tmp) / "vmaf.json"
        if proc.returncode != 0 or not log.exists():
            raise VQEError(f"ffmpeg libvmaf failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
        report = json.loads(log.read_text())
    per_frame = np.array([f["metrics"]["vmaf"] for f in report["frames"]], dtype=np.float64)
    return float(report["pooled_metrics"]["vmaf"]["mean"]), per_frame
