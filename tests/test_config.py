from pathlib import Path

import pytest
import yaml

from vqe.config import compose, load_params, params_from_dict
from vqe.util.errors import VQEError

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_the_composition_of_conf_defaults():
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert committed == compose(None, ROOT / "conf")
    assert committed["profile_name"] == "tiny"


@pytest.mark.parametrize("profile", ["tiny", "smoke", "paper"])
def test_every_profile_composes_and_validates(profile):
    params = params_from_dict(compose(profile, ROOT / "conf"), origin=profile)
    assert params.profile_name == profile
    tests = [c for c in params.synth.clips if c.split == "test"]
    assert [c.file for c in tests] == ["bigbuckbunny.mp4"]  # Big Buck Bunny is the test clip


def test_paper_profile_has_the_papers_settings():
    p = params_from_dict(compose("paper", ROOT / "conf"))
    assert (p.synth.scale, p.synth.codec, p.synth.preset, p.synth.intra_period) == (2, "libx264", "veryfast", 100)
    assert p.synth.train_crf == 38 and p.eval.main_kbps == 250
    assert min(p.synth.bitrates_kbps) <= 200 and 300 <= max(p.synth.bitrates_kbps)


def test_tiny_bitrates_span_150_to_500_kbps_at_360p_in_bits_per_pixel():
    p = load_params(ROOT / "params.yaml")
    bbb = next(c for c in p.synth.clips if c.split == "test")
    encoded_pixels = (bbb.height // p.synth.scale) * (bbb.height * 16 // 9 // p.synth.scale)
    scale = encoded_pixels / (640 * 360)
    assert min(p.synth.bitrates_kbps) == pytest.approx(150 * scale)
    assert max(p.synth.bitrates_kbps) == pytest.approx(500 * scale)
    assert len(p.synth.bitrates_kbps) >= 4


def _tiny() -> dict:
    return compose("tiny", ROOT / "conf")


def test_unknown_key_is_named():
    data = _tiny()
    data["synth"]["bitrate"] = 3
    with pytest.raises(VQEError, match="synth.bitrate"):
        params_from_dict(data)


def test_ill_typed_value_is_named():
    data = _tiny()
    data["synth"]["scale"] = "two"
    with pytest.raises(VQEError, match="synth.scale"):
        params_from_dict(data)


def test_unknown_codec_is_named():
    data = _tiny()
    data["synth"]["codec"] = "libx999"
    with pytest.raises(VQEError, match=r"synth.codec.*libx999"):
        params_from_dict(data)


def test_main_bitrate_must_be_a_test_bitrate():
    data = _tiny()
    data["eval"]["main_kbps"] = 77
    with pytest.raises(VQEError, match="eval.main_kbps"):
        params_from_dict(data)


@pytest.mark.parametrize("key", ["batch", "enhance_batch"])
def test_eval_batches_must_be_positive(key):
    data = _tiny()
    data["eval"][key] = 0
    with pytest.raises(VQEError, match=f"eval.{key}"):
        params_from_dict(data)


def test_adapted_rows_are_those_of_eval_adapt():
    data = _tiny()
    data["eval"]["adapt"] = ["stage_a"]  # computed, but Table 1 lists gan_evh's adapted row instead
    with pytest.raises(VQEError, match=r"eval.methods.*\(gan_evh\).*eval.adapt \(stage_a\)"):
        params_from_dict(data)
    data["eval"]["adapt_seconds"] = 0
    with pytest.raises(VQEError, match="eval.adapt_seconds"):
        params_from_dict(data)


def test_clip_needs_its_source_field():
    data = _tiny()
    data["synth"]["clips"][0].pop("file")
    with pytest.raises(VQEError, match=r"synth.clips\[0\].file"):
        params_from_dict(data)


def test_load_params_overrides_and_missing_file(tmp_path):
    p = load_params(ROOT / "params.yaml", ["eval.batch=3"])
    assert p.eval.batch == 3
    with pytest.raises(VQEError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("synth: {scale: 2}\nbogus_key: 1\n")
    with pytest.raises(VQEError, match=r"bad.yaml.*bogus_key"):
        load_params(bad)


@pytest.mark.parametrize("overrides", [["profile=paper"], ["synth.bitrates_kbps=[50,100]", "eval.main_kbps=50"]])
def test_dvc_hydra_composition_accepts_profile_and_key_overrides(tmp_path, overrides):
    """What `dvc exp run -S ...` does to params.yaml, through DVC's own Hydra composition."""
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(ROOT / "conf"), None, "config", str(tmp_path), overrides)
    params = load_params(out)
    if overrides == ["profile=paper"]:
        assert params.profile_name == "paper" and params.eval.main_kbps == 250
    else:
        assert params.profile_name == "tiny" and params.synth.bitrates_kbps == [50, 100]


@pytest.mark.parametrize("key,value,message", [
    ("mode", "vsr", "stage_a.model.mode"),
    ("align_channels", [15, 16], "stage_a.model.align_channels"),  # 15 is not a multiple of offset_groups
    ("base", "nearest", "stage_a.model.base"),
])
def test_stage_a_model_errors_are_named(key, value, message):
    data = _tiny()
    data["stage_a"]["model"][key] = value
    with pytest.raises(VQEError, match=message):
        params_from_dict(data)


def test_stage_a_train_errors_are_named():
    data = _tiny()
    data["stage_a"]["train"]["patch"] = 63  # SRA: the low-res patch must be whole
    with pytest.raises(VQEError, match="stage_a.train.patch"):
        params_from_dict(data)
    data = _tiny()
    data["stage_a"]["train"]["amp"] = "fp8"
    with pytest.raises(VQEError, match="stage_a.train.amp"):
        params_from_dict(data)


def test_paper_profile_keeps_the_papers_stage_a():
    p = params_from_dict(compose("paper", ROOT / "conf")).stage_a
    assert (p.model.mode, p.model.n, p.model.blocks, p.model.channels) == ("pp", 2, 30, 64)
    assert p.model.align_channels[0] == 64 and p.model.align_channels[-1] == 32 and len(p.model.align_channels) == 3
    assert p.model.attention and p.train.lr == 2e-4 and p.train.iters == 200_000 and p.train.batch == 8


@pytest.mark.parametrize("group,section,key,value", [
    ("nogan", "train", "handoff_fraction", 0.0),
    ("nogan", "train", "cycles", 0),
    ("nogan", "loss", "perceptual_net", "squeeze"),
    ("nogan_fast", "model", "encoder", "tiny"),
    ("nogan_fast", "model", "encoder_weights", "hub"),
    ("nogan_fast", "model", "encoder_weights", "auto"),  # no fallback on what the hub cache holds
    ("stage_b", "loss", "perceptual_net", "vgg"),
    ("nogan_fast", "train", "critic_patience", 0),
])
def test_nogan_errors_are_named(group, section, key, value):
    data = _tiny()
    data[group][section][key] = value
    with pytest.raises(VQEError, match=f"{group}.{section}"):
        params_from_dict(data)


@pytest.mark.parametrize("profile,net,encoder", [("tiny", "lpips", "scratch"), ("smoke", "vgg16", "scratch"),
                                                 ("paper", "vgg19", "imagenet")])
def test_profiles_name_the_networks_they_use(profile, net, encoder):
    """VGG-19 and ImageNet MobileNetV3 weights have no offline source: the CPU profiles name what exists
    (tiny trains Stage B on LPIPS-alex, smoke keeps the VGG-16 path under test)."""
    p = params_from_dict(compose(profile, ROOT / "conf"))
    assert p.stage_b.loss.perceptual_net == net and p.nogan_fast.model.encoder_weights == encoder


def test_nogan_defaults_follow_seed_003():
    p = params_from_dict(compose("paper", ROOT / "conf"))
    assert p.nogan.loss.perceptual_net == "lpips" and p.nogan_fast.loss.perceptual_net == "lpips"
    assert p.nogan.train.handoff_iters == 5000  # 1/20 of the pre-training, as seed 003's 1 h after 20 h
    assert p.nogan_fast.train.patch == 64 and p.nogan_fast.disc.kinds == ["spatial"]
    assert p.nogan_fast.loss.temporal == "none"
    tiny = params_from_dict(_tiny())
    # tiny: fewer than a third of the GAN's adversarial iterations (issue 5's target)
    gan_adversarial = tiny.stage_b.train.iters - tiny.stage_b.train.warmup
    assert tiny.nogan.train.handoff_iters * 3 < gan_adversarial
