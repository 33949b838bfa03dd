"""Bjøntegaard delta rate and bitrate equivalency, from the rate points of `results/rd/<method>.csv`.

Quality is paired with `kbps_scored`, the bitrate of the scored frames' own packets: a span of a clip
can cost more or less than the whole stream's average (`kbps`).

BD-rate (Bjøntegaard, VCEG-M33): the average bitrate change of a method against an anchor (here the
plain compressed stream) at equal quality, over the quality range both curves cover, with log-rate
interpolated piecewise-cubically in quality (PCHIP, as the JCT-VC common-test-conditions sheet
JCTVC-L1100; or Akima). The integration is the `bjontegaard` package's (FAU-LMS), which reproduces
that sheet; this module adds what our metrics need: lower-is-better metrics (LPIPS) are negated so
that "better" always points up, and curves that cannot be compared give NaN (reported as null), not
a number. Negative BD-rate = the method needs fewer bits for the same quality.

Bitrate equivalency (SUPERVEGAN §IV): for each input bitrate, the H.264 bitrate at which the plain
stream would reach the method's quality, read off the anchor's interpolated curve; no extrapolation
beyond the tested bitrates (NaN there).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import bjontegaard
import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from vqe.util.errors import VQEError

LOWER_IS_BETTER = frozenset({"lpips", "tlp", "tof"})
INTERPOLATION = "pchip"  # the JCT-VC CTC sheet's; "akima" is the other one the package offers


def _oriented(metric: str, values) -> np.ndarray:
    """Quality values with "higher is better" for every metric."""
    values = np.asarray(values, dtype=float)
    return -values if metric in LOWER_IS_BETTER else values


def bd_rate(anchor_kbps, anchor_quality, test_kbps, test_quality, metric: str = "psnr",
            method: str = INTERPOLATION) -> float:
    """BD-rate in percent of the test curve against the anchor curve; NaN if they do not overlap in quality,
    or if either curve's quality does not rise strictly with its bitrate (no rate is a function of quality)."""
    qa, qt = _oriented(metric, anchor_quality), _oriented(metric, test_quality)
    if overlap(qa, qt) == 0 or not (_rising(anchor_kbps, qa) and _rising(test_kbps, qt)):
        return math.nan
    with warnings.catch_warnings():  # the package warns on a small overlap; we report the overlap itself
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(np.asarray(anchor_kbps, float), qa, np.asarray(test_kbps, float), qt,
                                    method=method, require_matching_points=False, min_overlap=0)
    return float(value)


def _rising(kbps, quality) -> bool:
    """Whether quality rises strictly with bitrate (what the interpolation of rate in quality needs)."""
    order = np.argsort(np.asarray(kbps, float))
    return len(order) >= 2 and bool(np.all(np.diff(np.asarray(quality, float)[order]) > 0))


def overlap(a, b) -> float:
    """The share of the two curves' joint quality range that both cover (0 = disjoint, 1 = identical ranges)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    common = min(a.max(), b.max()) - max(a.min(), b.min())
    return max(common, 0.0) / union if union > 0 else 1.0


def equivalent_kbps(anchor_kbps, anchor_quality, quality, metric: str = "psnr") -> np.ndarray:
    """The anchor bitrate that reaches each `quality` (PCHIP of log-rate in quality; NaN outside its range).

    The anchor's quality must rise strictly with its rate (after orienting the metric); otherwise
    "the bitrate at this quality" is not defined and a ValueError says so.
    """
    q = _oriented(metric, anchor_quality)
    order = np.argsort(np.asarray(anchor_kbps, float))
    rates, q = np.asarray(anchor_kbps, float)[order], q[order]
    if np.any(np.diff(q) <= 0):
        raise ValueError(f"anchor {metric} does not improve strictly with bitrate: {list(q)}")
    curve = PchipInterpolator(q, np.log10(rates), extrapolate=False)
    return 10 ** curve(_oriented(metric, quality))


RATE = "kbps_scored"  # quality is paired with the bitrate of the scored frames' own packets


def load_rd(rd_dir: str | Path, methods: Sequence[str]) -> dict[str, pd.DataFrame]:
    """{method: its RD points sorted by bitrate} from `<rd_dir>/<method>.csv` for each of `methods`, in order."""
    rd = {}
    for method in methods:
        path = Path(rd_dir) / f"{method}.csv"
        if not path.is_file():
            raise VQEError(f"{path}: no RD points for method {method!r}; run its evaluation stage")
        rd[method] = pd.read_csv(path).sort_values(RATE)
    return rd


def bdrate_table(rd: dict[str, pd.DataFrame], anchor: str = "input", metrics: tuple[str, ...] = ("psnr", "vmaf", "lpips"),
                 method: str = INTERPOLATION) -> dict[str, dict[str, float | None]]:
    """{method: {bd_rate_<metric>: percent or None, overlap_<metric>: share}} against `anchor`."""
    if anchor not in rd:
        raise ValueError(f"no RD points for the anchor {anchor!r}; have {sorted(rd)}")
    base, table = rd[anchor], {}
    for name, data in rd.items():
        if name == anchor:
            continue
        row: dict[str, float | None] = {}
        for metric in metrics:
            value = bd_rate(base[RATE], base[metric], data[RATE], data[metric], metric, method)
            row[f"bd_rate_{metric}"] = None if math.isnan(value) else value
            row[f"overlap_{metric}"] = overlap(_oriented(metric, base[metric]), _oriented(metric, data[metric]))
        table[name] = row
    return table


def equivalency_table(rd: dict[str, pd.DataFrame], anchor: str = "input", metric: str = "psnr") -> pd.DataFrame:
    """For every method and input bitrate: its quality and the anchor bitrate that gives the same quality.

    If the anchor's quality does not rise strictly with its bitrate, the equivalent bitrates are NaN
    (with a warning naming the metric) rather than a guess.
    """
    base = rd[anchor]
    rows = []
    for name, data in rd.items():
        if name == anchor:
            continue
        try:
            equivalent = equivalent_kbps(base[RATE], base[metric], data[metric], metric)
        except ValueError as e:
            warnings.warn(f"bitrate equivalency in {metric}: {e}; left empty")
            equivalent = np.full(len(data), np.nan)
        for kbps, quality, eq in zip(data[RATE], data[metric], equivalent):
            rows.append({"method": name, "kbps": kbps, metric: quality, "equivalent_kbps": eq,
                         "ratio": eq / kbps})
    return pd.DataFrame(rows)
