"""Synthetic ground-truth video: real photos filmed by a smoothly moving virtual camera.

Clips are rendered from the photos bundled in scikit-image's wheel (no download), so the
textures are natural, while the motion is known and controlled: a smooth camera trajectory
(pan, zoom, rotation) over a background photo plus independently moving soft-edged sprites
cut from other photos. Because foreground and background move differently and occlude each
other, a restoration model trained on these clips has to learn real multi-frame alignment
rather than a single global shift.

Everything is deterministic for a given seed: all randomness comes from a numpy Generator,
and the rendering (torch `grid_sample` on CPU, float32) has no random or order-dependent
reductions.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence

import numpy as np
import skimage.data  # local import: only needed here, and it is slow to import
import torch
import torch.nn.functional as F

from vqe.util.errors import VQEError

__all__ = ["PHOTOS", "load_photo", "render_clip"]

# Photos shipped inside the scikit-image wheel. Any other `skimage.data` image needs a
# download (and there is no network at training time), so it is deliberately absent.
_RGB_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "stereo_motorcycle",
)
_GREY_PHOTOS = ("camera", "brick", "grass", "gravel", "moon")
PHOTOS: tuple[str, ...] = _RGB_PHOTOS + _GREY_PHOTOS
# The retina photo is a disc of fundus on black; clips are rendered from the square inside
# the disc (centre ~(702, 705), radius ~698), or their corners would show that black.
_RENDER_CROP = {"retina": (slice(215, 1190), slice(218, 1193))}

# Object sprites: height as a fraction of the frame height, and their own slight rotation
# (degrees) and scale (log) wobble. Fixed: they shape the data set, they are not knobs.
_OBJECT_HEIGHT = (0.10, 0.25)
_OBJECT_ROTATION_DEG = 10.0
_OBJECT_LOG_SCALE = 0.10
# Periods (frames) of the low-frequency sinusoids that make up the trajectories: long
# enough for smooth, camera-like motion, short enough that a 60-frame clip changes direction.
_PAN_PERIODS = (24.0, 96.0)
_ROT_ZOOM_PERIODS = (48.0, 160.0)
_TERMS = 3
# Background samples stay this many (working-resolution) pixels inside the photo, which
# covers the bicubic kernel's support: no sample ever reads padding, so no dark borders.
_MARGIN_PX = 2.5
# Output pixels rendered per batch: bounds memory (grid + float frames) to ~100 MB.
_CHUNK_PIXELS = 2_000_000


def _check_int(name: str, value: object, minimum: int) -> int:
    """Validate an integer parameter (bools and floats are rejected: they are likely bugs)."""
    if isinstance(value, bool):
        raise VQEError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise VQEError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise VQEError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_float(name: str, value: object, minimum: float, maximum: float = math.inf) -> float:
    """Validate a finite real parameter in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise VQEError(f"{name} must be a number in [{minimum}, {maximum}], got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise VQEError(f"{name} must be a number in [{minimum}, {maximum}], got {value}")
    return value


def _check_photo(name: object, what: str = "photo") -> str:
    if not isinstance(name, str) or name not in PHOTOS:
        raise VQEError(f"unknown {what} {name!r}; valid photos: {', '.join(PHOTOS)}")
    return name


@functools.lru_cache(maxsize=None)
def _load_photo_cached(name: str) -> np.ndarray:
    """Decode once per process: decoding the large JPEGs costs more than rendering a frame."""

    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":  # (left, right, disparity): the left view is a photo
        image = image[0]
    image = np.asarray(image)
    if image.dtype != np.uint8:  # every bundled photo is uint8 today; be robust anyway
        image = np.clip(np.round(image * (255.0 if image.max() <= 1.0 else 1.0)), 0, 255)
        image = image.astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    image.setflags(write=False)
    return image


def load_photo(name: str) -> np.ndarray:
    """Return bundled photo `name` as a fresh uint8 (H, W, 3) RGB array (grey becomes RGB)."""
    return _load_photo_cached(_check_photo(name)).copy()


@functools.lru_cache(maxsize=None)
def _photo_tensor(name: str) -> torch.Tensor:
    """The photo as rendered, float32 (1, 3, H, W) in [0, 255], cached; never modify it."""
    image = _load_photo_cached(name)[_RENDER_CROP.get(name, (slice(None), slice(None)))]
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()


# --------------------------------------------------------------------------- trajectories


def _sinusoids(
    rng: np.random.Generator, frames: int, dims: int, periods: tuple[float, float]
) -> np.ndarray:
    """Smooth random paths (frames, dims): sums of a few low-frequency sinusoids.

    Each term's amplitude is proportional to its period, so every term contributes a
    similar speed; the result has a per-frame speed of order 1 and is rescaled by callers.
    """
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    period = rng.uniform(*periods, size=(1, _TERMS, dims))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=(1, _TERMS, dims))
    speed = rng.uniform(0.3, 1.0, size=(1, _TERMS, dims))
    amplitude = speed * period / (2.0 * np.pi)
    return (amplitude * np.sin(2.0 * np.pi * t / period + phase)).sum(axis=1)


def _rotations(theta: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 2, 2) for angles theta (N,) in radians."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _camera_flow(
    shift: np.ndarray, theta: np.ndarray, zoom: np.ndarray, corners: np.ndarray
) -> float:
    """Largest per-frame background motion (output pixels) anywhere in the frame.

    Frame t shows world point R_t q / z_t + d_t at centred output position q. The same point
    appears in frame t+1 at z_{t+1} R_{t+1}^T (R_t q / z_t + d_t - d_{t+1}); the displacement
    is affine in q, so its largest norm over the frame rectangle is at one of the corners.
    """
    if len(shift) < 2:
        return 0.0
    rot = _rotations(theta)
    world = np.einsum("tij,cj->tci", rot, corners) / zoom[:, None, None] + shift[:, None, :]
    moved = world[:-1] - shift[1:, None, :]
    seen = np.einsum("tji,tcj->tci", rot[1:], moved) * zoom[1:, None, None]
    return float(np.linalg.norm(seen - corners[None], axis=-1).max())


def _camera_path(
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    max_shift: float,
    max_rotation: float,
    max_zoom: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random smooth camera path: per-frame shift (output px), rotation (rad), zoom factor.

    The peak background motion is drawn in [0.6, 1] * max_shift; rotation and zoom are
    kept to at most half of it so the pan dominates, as with a hand-held or panning camera.
    """
    pan = _sinusoids(rng, frames, 2, _PAN_PERIODS)
    rot = _sinusoids(rng, frames, 1, _ROT_ZOOM_PERIODS)[:, 0]
    logz = _sinusoids(rng, frames, 1, _ROT_ZOOM_PERIODS)[:, 0]
    # Normalise the rotation/zoom paths to their drawn amplitudes.
    rot *= rng.uniform(0.3, 1.0) * math.radians(max_rotation) / max(np.abs(rot).max(), 1e-12)
    logz *= rng.uniform(0.3, 1.0) * max_zoom / max(np.abs(logz).max(), 1e-12)
    target = rng.uniform(0.6, 1.0) * max_shift
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float64) * [width / 2, height / 2]

    def flow(alpha: float, beta: float) -> float:
        return _camera_flow(alpha * pan, beta * rot, np.exp(beta * logz), corners)

    if frames < 2:  # no motion to bound: keep the random view, a single still frame
        return pan[:1] * 0.0, rot, np.exp(logz)
    # Shrink rotation/zoom until they alone account for at most half the target motion.
    beta = 1.0
    for _ in range(60):
        if flow(0.0, beta) <= 0.5 * target:
            break
        beta *= 0.8
    else:
        beta = 0.0
    # The flow is convex in the pan scale alpha (max of norms of affine functions) and below
    # target at 0, so bisection finds the unique alpha where the peak motion hits target.
    lo, hi = 0.0, 1.0
    while flow(hi, beta) < target and hi < 1e6:
        hi *= 2.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if flow(mid, beta) <= target else (lo, mid)
    return lo * pan, beta * rot, np.exp(beta * logz)


def _object_path(
    rng: np.random.Generator, frames: int, max_shift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random smooth sprite path: centre offset (output px), rotation (rad), scale factor."""
    pan = _sinusoids(rng, frames, 2, _PAN_PERIODS)
    rot = _sinusoids(rng, frames, 1, _ROT_ZOOM_PERIODS)[:, 0]
    logs = _sinusoids(rng, frames, 1, _ROT_ZOOM_PERIODS)[:, 0]
    rot *= rng.uniform(0.3, 1.0) * math.radians(_OBJECT_ROTATION_DEG) / max(abs(rot).max(), 1e-12)
    logs *= rng.uniform(0.3, 1.0) * _OBJECT_LOG_SCALE / max(np.abs(logs).max(), 1e-12)
    if frames >= 2:
        speed = np.linalg.norm(np.diff(pan, axis=0), axis=1).max()
        pan *= rng.uniform(0.6, 1.0) * max_shift / max(speed, 1e-12)
    return pan, rot, np.exp(logs)


# ------------------------------------------------------------------------------ rendering


def _downscale(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Antialiased shrink by `factor` (>1) so later sampling at ~1:1 does not alias."""
    h, w = image.shape[-2:]
    size = (max(1, math.ceil(h / factor)), max(1, math.ceil(w / factor)))
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


def _sample(image: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """grid_sample one (1, C, H, W) image at a batch of (N, h, w, 2) grids -> (N, C, h, w).

    The image is broadcast with `expand`, a view: it is not copied once per frame.
    """
    return F.grid_sample(
        image.expand(grid.shape[0], -1, -1, -1),
        grid,
        mode=mode,
        padding_mode="zeros",
        align_corners=False,
    )


def _background_plan(
    photo: torch.Tensor,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    max_shift: float,
    max_rotation: float,
    max_zoom: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the camera path and framing: (working photo, per-frame affine (frames, 2, 3)).

    The affines map normalised output coordinates to normalised photo coordinates, the
    convention of `F.affine_grid` with align_corners=False.
    """
    shift, theta, zoom = _camera_path(rng, frames, height, width, max_shift, max_rotation, max_zoom)
    ph, pw = photo.shape[-2:]
    # Extent, in output pixels at zoom 1, of the world region the whole clip looks at.
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float64) * [width / 2, height / 2]
    world = np.einsum("tij,cj->tci", _rotations(theta), corners) / zoom[:, None, None]
    world = (world + shift[:, None, :]).reshape(-1, 2)
    lo, hi = world.min(axis=0), world.max(axis=0)
    extent = hi - lo
    # Photo pixels per output pixel: nearly as large as fits (most detail, least upscaling);
    # the margin keeps the bicubic support inside the photo, so no padding is ever read.
    fit = min(pw / extent[0], ph / extent[1])
    margin = _MARGIN_PX * max(1.0, fit / zoom.max())
    fit = min((pw - 2 * margin) / extent[0], (ph - 2 * margin) / extent[1])
    if fit <= 0:  # cannot happen for the bundled photos (all >= 300 px); guard anyway
        raise VQEError(f"photo is too small for a {height}x{width} clip")
    scale = fit * rng.uniform(0.8, 1.0)
    slack = np.array([pw, ph]) - 2 * margin - scale * extent
    origin = margin + rng.uniform(0.0, 1.0, size=2) * slack - scale * lo  # photo px of world 0

    # Antialiasing: grid_sample takes point samples, which alias when an output pixel spans
    # several photo pixels. Shrink the photo (with a low-pass) to one working pixel per
    # output pixel at the strongest zoom-in, so no frame samples coarser than ~1:1.
    factor = scale / zoom.max()
    if factor > 1.0:
        photo = _downscale(photo, factor)

    # x_photo = origin + scale * (R q / z + d) with q = u * (w/2, h/2) for normalised output
    # coords u, then normalised photo coords are 2 x_photo / size - 1.
    size = np.array([pw, ph], np.float64)
    lin = (scale / zoom)[:, None, None] * _rotations(theta) * np.array([width / 2, height / 2])
    lin = 2.0 * lin / size[None, :, None]
    off = 2.0 * (origin + scale * shift) / size - 1.0
    affine = np.concatenate([lin, off[:, :, None]], axis=2)
    return photo, torch.from_numpy(affine.astype(np.float32))


def _make_sprite(
    photo: torch.Tensor, rng: np.random.Generator, obj_h: float, obj_w: float, oversample: float
) -> torch.Tensor:
    """A premultiplied RGBA (1, 4, H, W) sprite: a random photo patch in a soft-edged blob."""
    sh = max(4, math.ceil(obj_h * oversample)) + 4
    sw = max(4, math.ceil(obj_w * oversample)) + 4
    ph, pw = photo.shape[-2:]
    # Photo pixels per sprite pixel: a random zoom into the photo, up to "whole photo".
    zoom_max = min(ph / sh, pw / sw)
    k = zoom_max * rng.uniform(0.25, 1.0)
    ch, cw = max(1, min(ph, round(sh * k))), max(1, min(pw, round(sw * k)))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = photo[:, :, y0 : y0 + ch, x0 : x0 + cw]
    rgb = F.interpolate(crop, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)

    # Blob: an ellipse whose radius wobbles with a few angular harmonics, with a soft edge.
    ry, rx = (sh - 4) / 2.0, (sw - 4) / 2.0
    y = (torch.arange(sh, dtype=torch.float64) + 0.5 - sh / 2.0)[:, None] / ry
    x = (torch.arange(sw, dtype=torch.float64) + 0.5 - sw / 2.0)[None, :] / rx
    r, phi = torch.sqrt(x**2 + y**2), torch.atan2(y, x)
    radius = torch.ones_like(phi)
    for harmonic in (2, 3, 4):
        amp, ph0 = rng.uniform(0.0, 0.08), rng.uniform(0.0, 2.0 * np.pi)
        radius = radius - amp * (1.0 + torch.cos(harmonic * phi + ph0))  # stays within 1
    soft = max(1.5 / min(rx, ry), 0.12)  # at least 1.5 sprite pixels of feathering
    alpha = torch.clamp((radius - r) / soft, 0.0, 1.0)
    alpha = (alpha * alpha * (3.0 - 2.0 * alpha)).to(torch.float32)[None, None]  # smoothstep
    return torch.cat([rgb.clamp(0.0, 255.0) * alpha, alpha], dim=1)


def _object_plan(
    photo: torch.Tensor,
    rng: np.random.Generator,
    frames: int,
    height: int,
    width: int,
    max_shift: float,
) -> tuple[torch.Tensor, np.ndarray, int, torch.Tensor]:
    """One moving sprite: (RGBA sprite, per-frame corner (frames, 2) as x, y of a box of
    box x box output pixels around it, per-frame affine (frames, 2, 3) from box to sprite)."""
    obj_h = height * rng.uniform(*_OBJECT_HEIGHT)
    obj_w = min(obj_h * rng.uniform(0.7, 1.5), 0.6 * width)
    oversample = math.exp(_OBJECT_LOG_SCALE)  # sprite texels per output px at largest scale
    sprite = _make_sprite(photo, rng, obj_h, obj_w, oversample)
    sh, sw = sprite.shape[-2:]
    pan, rot, scale = _object_path(rng, frames, max_shift)
    # Start position: keep the centre's whole path inside the frame when it fits, so the
    # object stays visible (it leaves the frame partly only when the path is too long).
    lo, hi = pan.min(axis=0), pan.max(axis=0)
    room = np.array([width, height], np.float64) - (hi - lo)
    start = np.where(room > 0, rng.uniform(0.0, 1.0, size=2) * np.maximum(room, 0), room / 2) - lo
    centre = start + pan  # (frames, 2) output px

    # A fixed-size square box around the sprite, so all frames sample in one batch.
    half = math.ceil(0.5 * math.hypot(sh, sw) * scale.max() / oversample) + 1
    box = 2 * half + 1
    corner = np.floor(centre).astype(np.int64) - half
    # Box coords u in [-1, 1] are output pixel centres corner + (u + 1) box / 2; relative to
    # the sprite centre that is q = c + u box / 2, and the sprite texel offset is
    # oversample / scale * R(-rot) q, normalised by the sprite half-size.
    c = corner + box / 2.0 - centre
    inv = _rotations(-rot) * (oversample / scale)[:, None, None]
    inv = inv / np.array([sw / 2.0, sh / 2.0])[None, :, None]
    affine = np.concatenate([inv * (box / 2.0), np.einsum("nij,nj->ni", inv, c)[:, :, None]], 2)
    return sprite, corner, box, torch.from_numpy(affine.astype(np.float32))


def _composite(
    chunk: torch.Tensor,
    first: int,
    sprite: torch.Tensor,
    corner: np.ndarray,
    box: int,
    affine: torch.Tensor,
) -> None:
    """Lay one sprite over frames [first, first + len(chunk)) in place (premultiplied over)."""
    n, _, height, width = chunk.shape
    grid = F.affine_grid(affine[first : first + n], [n, 4, box, box], align_corners=False)
    layer = _sample(sprite, grid, "bilinear").numpy()
    # Paste with numpy on views of the chunk: these small per-frame ops would each start a
    # parallel region in torch, whose overhead dominates on a busy machine.
    frames_np = chunk.numpy()
    for t in range(n):
        x0, y0 = (int(v) for v in corner[first + t])
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + box, width), min(y0 + box, height)
        if fx0 >= fx1 or fy0 >= fy1:
            continue
        patch = layer[t, :, fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        dst = frames_np[t, :, fy0:fy1, fx0:fx1]
        dst *= 1.0 - patch[3:4]
        dst += patch[:3]


def render_clip(
    background: str,
    *,
    frames: int,
    height: int,
    width: int,
    seed: int,
    objects: int = 3,
    object_photos: Sequence[str] | None = None,
    max_shift: float = 4.0,
    max_rotation: float = 2.0,
    max_zoom: float = 0.08,
    object_shift: float | None = None,
) -> np.ndarray:
    """Render a synthetic camera-motion clip; uint8 (frames, height, width, 3) RGB.

    The camera follows a smooth random path over the `background` photo (pan, rotation up
    to `max_rotation` degrees, zoom up to exp(+-`max_zoom`)); the background moves by at most
    `max_shift` output pixels per frame anywhere in the frame (peak drawn in [0.6, 1] of it),
    and the view always stays inside the photo, which is upscaled if needed. `objects` sprites
    cut from `object_photos` (default: every other bundled photo) move on their own paths,
    their centres by at most `object_shift` (default `max_shift`) px per frame, and occlude
    the background with soft edges. The same arguments always give the same clip.
    """
    background = _check_photo(background, "background photo")
    frames = _check_int("frames", frames, 1)
    height = _check_int("height", height, 16)
    width = _check_int("width", width, 16)
    seed = _check_int("seed", seed, 0)
    objects = _check_int("objects", objects, 0)
    max_shift = _check_float("max_shift", max_shift, 0.0, 0.25 * min(height, width))
    max_rotation = _check_float("max_rotation", max_rotation, 0.0, 45.0)
    max_zoom = _check_float("max_zoom", max_zoom, 0.0, 0.5)
    if object_shift is None:
        object_shift = max_shift
    object_shift = _check_float("object_shift", object_shift, 0.0, 0.25 * min(height, width))
    if object_photos is None:
        pool = tuple(p for p in PHOTOS if p != background)
    else:
        if isinstance(object_photos, str) or not isinstance(object_photos, Sequence):
            raise VQEError(
                f"object_photos must be a sequence of photo names, got {object_photos!r}"
            )
        if len(object_photos) == 0:
            raise VQEError("object_photos must not be empty (use objects=0 for no objects)")
        pool = tuple(_check_photo(p, "object_photos entry") for p in object_photos)

    # Independent streams: the camera path does not depend on the object settings, so the
    # same seed with objects=0 gives exactly the background of the clip with objects.
    camera_seq, objects_seq = np.random.SeedSequence(seed).spawn(2)
    camera_rng = np.random.default_rng(camera_seq)
    objects_rng = np.random.default_rng(objects_seq)
    with torch.no_grad():
        photo, affine = _background_plan(
            _photo_tensor(background), camera_rng, frames, height, width,
            max_shift, max_rotation, max_zoom,
        )  # fmt: skip
        sprites = []
        for _ in range(objects):
            name = pool[int(objects_rng.integers(len(pool)))]
            plan = _object_plan(
                _photo_tensor(name), objects_rng, frames, height, width, object_shift
            )
            sprites.append(plan)
        out = torch.empty((frames, height, width, 3), dtype=torch.uint8)
        step = max(1, _CHUNK_PIXELS // (height * width))  # bounded memory for long clips
        for first in range(0, frames, step):
            n = min(step, frames - first)
            size = [n, 3, height, width]
            grid = F.affine_grid(affine[first : first + n], size, align_corners=False)
            chunk = _sample(photo, grid, "bicubic").clamp_(0.0, 255.0)  # bicubic overshoot
            for sprite_plan in sprites:
                _composite(chunk, first, *sprite_plan)
            out[first : first + n] = chunk.round_().clamp_(0.0, 255.0).permute(0, 2, 3, 1)
    return out.numpy()
