"""Run one pipeline notebook the way every DVC stage does: papermill, with the kernel started in notebooks/
(as JupyterLab starts it), the parameters given, and the executed copy written to `paths.notebooks` of
params.yaml (its folder made first).

    python -m vqe.util.notebook 02b_evaluate stage_a -p method stage_a
      -> notebooks/02b_evaluate.ipynb executed into <paths.notebooks>/02b_evaluate_stage_a.ipynb
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from vqe.util.errors import VQEError


def output_folder(params_file: str | Path = "params.yaml") -> Path:
    """`paths.notebooks` of the parameters file (read without the schema: this runs before any stage code)."""
    try:
        return Path(yaml.safe_load(Path(params_file).read_text())["paths"]["notebooks"])
    except (OSError, KeyError, TypeError) as e:
        raise VQEError(f"{params_file}: no paths.notebooks ({type(e).__name__}: {e})") from None


def command(notebook: str, suffix: str, parameters: list[tuple[str, str]], out_dir: Path) -> list[str]:
    """The papermill command line: notebooks/<notebook>.ipynb -> <out_dir>/<notebook>[_<suffix>].ipynb."""
    name = f"{notebook}_{suffix}" if suffix else notebook
    args = ["papermill", "-k", "python3", "--cwd", "notebooks", "--log-level", "WARNING"]
    for key, value in parameters:
        args += ["-p", key, value]
    return args + [f"notebooks/{notebook}.ipynb", str(out_dir / f"{name}.ipynb")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vqe.util.notebook", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", help="a notebook of notebooks/, without .ipynb")
    ap.add_argument("suffix", nargs="?", default="", help="the executed copy's suffix (a foreach item)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), help="a parameter")
    args = ap.parse_args(argv)
    try:
        out_dir = output_folder()
    except VQEError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.call(command(args.notebook, args.suffix, args.p, out_dir))


if __name__ == "__main__":
    sys.exit(main())
