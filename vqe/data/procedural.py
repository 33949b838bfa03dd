"""Procedural training video: "dead leaves" — occluding shapes moving in layers under a moving camera.

Why: the test content (rendered animation) is mostly smooth shaded regions, crisp occluding edges and
a few textures; clips of a handful of photos do not cover it, and real video that ships offline is
scarce. Dead leaves are unlimited, license-free and controllable: each clip is a stack of shapes
(discs, ellipses, rectangles, triangles) whose sizes follow a power law (many small, few large, like
natural images), filled with a flat colour, a linear or radial gradient, or a texture cut from a bundled
photo, with optional soft (defocused) edges. Every shape drifts and turns on its own; the camera pans,
zooms and rotates over the whole stack, so neighbouring frames differ by real occluding motion.

Deterministic: all randomness comes from `numpy.random.default_rng(seed)`; rendering is float32 torch
on the CPU with no order-dependent reductions. The knobs are `vqe.config.LeavesSpec`, the `leaves:` of a
`synth.clips` entry with `source: procedural`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vqe.config import LeavesSpec
from vqe.data.synthetic import PHOTOS, _photo_tensor
from vqe.util.errors import VQEError

SHAPES = ("disc", "ellipse", "rectangle", "triangle")
FILLS = ("flat", "gradient", "radial", "texture")


def power_law(rng: np.random.Generator, n: int, lo: float, hi: float, power: float) -> np.ndarray:
    """n samples with density ~ r^-power on [lo, hi] (inverse CDF)."""
    u = rng.random(n)
    a = 1 - power
    return (lo ** a + u * (hi ** a - lo ** a)) ** (1 / a)


def _colour(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    """Colours in [0, 1]: a random hue at varied saturation and value (HSV -> RGB), like painted surfaces."""
    h, s, v = rng.random(n), rng.beta(1.2, 1.8, n), rng.beta(2.5, 1.5, n)
    k = (np.array([5.0, 3.0, 1.0])[None] + h[:, None] * 6) % 6
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb.astype(np.float32)


@dataclass
class _Shape:
    kind: str
    fill: str
    centre: np.ndarray  # (2,) x, y in canvas units (frame heights), at frame 0
    velocity: np.ndarray  # (2,) per frame
    radius: float
    aspect: float
    angle: float  # radians at frame 0
    spin: float  # radians per frame
    colours: np.ndarray  # (2, 3): flat uses the first; gradients blend both
    direction: float  # gradient direction
    softness: float  # edge width in canvas units (0 = sharp)
    texture: tuple[str, float, float, float] = ("", 0.0, 0.0, 1.0)  # photo, u, v offsets, scale


def _plan(rng: np.random.Generator, cfg: LeavesSpec, frames: int, aspect: float, height: int) -> list[_Shape]:
    px = 1.0 / height  # one output pixel in canvas units
    radii = np.sort(power_law(rng, cfg.shapes, cfg.min_size, cfg.max_size, cfg.size_power))[::-1]
    shapes = []
    for r in radii:  # large first (behind), small last (in front), as dead leaves fall
        u = rng.random()
        fill = ("texture" if u < cfg.texture_fraction else
                ("gradient" if rng.random() < 0.5 else "radial") if u < cfg.texture_fraction + cfg.gradient_fraction
                else "flat")
        moving = rng.random() < cfg.moving_fraction
        speed = rng.uniform(0, cfg.max_shift) * px * moving
        theta = rng.uniform(0, 2 * math.pi)
        photo = PHOTOS[int(rng.integers(len(PHOTOS)))]
        shapes.append(_Shape(
            kind=SHAPES[int(rng.integers(len(SHAPES)))], fill=fill,
            centre=np.array([rng.uniform(-0.2, aspect + 0.2), rng.uniform(-0.2, 1.2)]),
            velocity=speed * np.array([math.cos(theta), math.sin(theta)]),
            radius=float(r), aspect=float(np.exp(rng.uniform(-0.7, 0.7))), angle=rng.uniform(0, 2 * math.pi),
            spin=rng.uniform(-0.01, 0.01) * moving, colours=_colour(rng, 2), direction=rng.uniform(0, 2 * math.pi),
            softness=float(rng.uniform(1, 6) * px) if rng.random() < cfg.soft_fraction else 0.0,
            texture=(photo, rng.random(), rng.random(), float(np.exp(rng.uniform(-1.0, 0.7)))),
        ))
    return shapes


def _mask(shape: _Shape, x: torch.Tensor, y: torch.Tensor, t: int, ss_px: float) -> torch.Tensor:
    """Coverage in [0, 1] of `shape` at frame t on the canvas points (x, y)."""
    cx, cy = shape.centre + t * shape.velocity
    a = shape.angle + t * shape.spin
    dx, dy = x - cx, y - cy
    u = (math.cos(a) * dx + math.sin(a) * dy) / (shape.radius * shape.aspect ** 0.5)
    v = (-math.sin(a) * dx + math.cos(a) * dy) / (shape.radius / shape.aspect ** 0.5)
    if shape.kind == "disc":
        d = torch.sqrt(u * u * shape.aspect + v * v / shape.aspect) - 1
    elif shape.kind == "ellipse":
        d = torch.sqrt(u * u + v * v) - 1
    elif shape.kind == "rectangle":
        d = torch.maximum(u.abs(), v.abs()) - 1
    else:  # triangle: three half-planes
        d = torch.maximum(torch.maximum(-v - 0.5, 0.866 * u + 0.5 * v - 0.5), -0.866 * u + 0.5 * v - 0.5)
    width = max(shape.softness, ss_px) / shape.radius  # signed distance (in radii) -> coverage
    return torch.clamp(0.5 - d / width, 0, 1)


@functools.lru_cache(maxsize=None)
def _unit_photo(photo: str) -> torch.Tensor:
    """The photo as (3, h, w) in [0, 1], computed once per process (every textured shape of every frame
    samples it); never modify it."""

    return _photo_tensor(photo)[0] / 255.0


def _fill(shape: _Shape, x: torch.Tensor, y: torch.Tensor, t: int) -> torch.Tensor:
    """RGB (3, H, W) of the shape's surface; it moves with the shape."""
    cx, cy = shape.centre + t * shape.velocity
    c0, c1 = (torch.from_numpy(c)[:, None, None] for c in shape.colours)
    if shape.fill == "flat":
        return c0.expand(3, *x.shape)
    if shape.fill in ("gradient", "radial"):
        if shape.fill == "gradient":
            g = ((x - cx) * math.cos(shape.direction) + (y - cy) * math.sin(shape.direction)) / (2 * shape.radius) + 0.5
        else:
            g = torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) / shape.radius
        g = g.clamp(0, 1)
        return c0 * (1 - g) + c1 * g
    photo, u0, v0, scale = shape.texture
    img = _unit_photo(photo)
    ph, pw = img.shape[-2:]
    a = shape.angle + t * shape.spin  # the texture turns and moves with the shape
    dx, dy = x - cx, y - cy
    tu = (math.cos(a) * dx + math.sin(a) * dy) * scale
    tv = (-math.sin(a) * dx + math.cos(a) * dy) * scale
    # canvas units -> photo pixels: one frame height covers 360 photo pixels at scale 1
    gx = ((u0 * pw + tu * 360) % pw) / pw * 2 - 1
    gy = ((v0 * ph + tv * 360) % ph) / ph * 2 - 1
    out = F.grid_sample(img[None], torch.stack([gx, gy], -1)[None], mode="bilinear", align_corners=False)[0]
    tint = c0 / c0.mean().clamp_min(1e-3)  # grey photos become coloured surfaces
    return (out * tint.clamp(0, 2) if photo in ("camera", "brick", "grass", "gravel", "moon") else out).clamp(0, 1)


def _pixel_box(shape: _Shape, t: int, camera: tuple, hs: int, ws: int) -> tuple[int, int, int, int] | None:
    """The rows/columns of the (super-sampled) frame that can see `shape` at frame t, or None.

    Rendering only there (not the whole frame for every shape) is what makes clips cheap."""
    s, a, pan, aspect = camera
    cx, cy = shape.centre + t * shape.velocity
    reach = shape.radius * max(shape.aspect, 1 / shape.aspect) ** 0.5 * 1.5 + shape.softness + 2 / hs
    # canvas -> pixel: undo the pan, the rotation and the zoom about the frame centre
    px, py = cx - pan[0] - aspect / 2, cy - pan[1] - 0.5
    x0 = (math.cos(a) * px + math.sin(a) * py) / s + aspect / 2
    y0 = (-math.sin(a) * px + math.cos(a) * py) / s + 0.5
    r = reach / s
    r0, r1 = max(0, math.floor((y0 - r) * hs)), min(hs, math.ceil((y0 + r) * hs))
    c0, c1 = max(0, math.floor((x0 - r) * hs)), min(ws, math.ceil((x0 + r) * hs))
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def render_dead_leaves(*, frames: int, height: int, width: int, seed: int, cfg: LeavesSpec = LeavesSpec()
                       ) -> np.ndarray:
    """A procedural clip, uint8 (frames, height, width, 3); the same arguments give the same clip."""
    cfg.validate("leaves")
    if frames < 1 or height < 16 or width < 16:
        raise VQEError(f"procedural clip: frames={frames}, {width}x{height} is too small")
    rng = np.random.default_rng(seed)
    aspect = width / height
    shapes = _plan(rng, cfg, frames, aspect, height)
    background = _Shape("rectangle", "texture" if rng.random() < cfg.texture_fraction else "gradient", np.array([aspect / 2, 0.5]), np.zeros(2), 10.0, 1.0, 0.0, 0.0,
                        _colour(rng, 2), rng.uniform(0, 2 * math.pi), 0.0,
                        shapes[0].texture if shapes else ("", 0.0, 0.0, 1.0))
    pan_dir = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(0, cfg.camera_shift) / height * np.array([math.cos(pan_dir), math.sin(pan_dir)])
    zoom, rot = rng.uniform(-cfg.camera_zoom, cfg.camera_zoom), math.radians(rng.uniform(-1, 1) * cfg.camera_rotation)
    if rng.random() < cfg.static_camera:
        pan, zoom, rot = pan * 0, 0.0, 0.0
    ss = cfg.supersample
    hs, ws = height * ss, width * ss
    gy, gx = torch.meshgrid((torch.arange(hs, dtype=torch.float32) + 0.5) / hs,
                            (torch.arange(ws, dtype=torch.float32) + 0.5) / hs * 1.0, indexing="ij")
    out = np.empty((frames, height, width, 3), np.uint8)
    with torch.no_grad():
        for t in range(frames):
            # camera: zoom and rotate about the frame centre, then pan (canvas points seen by each pixel)
            s, a = math.exp(-zoom * t), rot * t
            x0, y0 = gx - aspect / 2, gy - 0.5
            x = s * (math.cos(a) * x0 - math.sin(a) * y0) + aspect / 2 + pan[0] * t
            y = s * (math.sin(a) * x0 + math.cos(a) * y0) + 0.5 + pan[1] * t
            img = _fill(background, x, y, 0)
            for shape in shapes:
                box = _pixel_box(shape, t, (s, a, pan * t, aspect), hs, ws)
                if box is None:
                    continue
                r0, r1, c0, c1 = box
                bx, by = x[r0:r1, c0:c1], y[r0:r1, c0:c1]
                m = _mask(shape, bx, by, t, 1.0 / hs)
                region = img[:, r0:r1, c0:c1]
                img[:, r0:r1, c0:c1] = region * (1 - m) + _fill(shape, bx, by, t) * m
            if ss > 1:
                img = F.avg_pool2d(img[None], ss)[0]
            out[t] = (img.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return out
