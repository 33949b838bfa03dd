"""vqe.util.atomic: outputs appear whole or not at all, with the mode of a plain write."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vqe.util.atomic import atomic_path, same_file, save_npy, write_json, write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out" / "table.json"
    write_json(path, {"psnr": 1.5})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("{half")
            raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"psnr": 1.5}
    assert sorted(p.name for p in path.parent.iterdir()) == ["table.json"]


def test_outputs_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.md", "x")
        save_npy(tmp_path / "b.npy", np.arange(3))
    finally:
        os.umask(old)
    assert (tmp_path / "a.md").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.npy").stat().st_mode & 0o777 == 0o640
    assert np.load(tmp_path / "b.npy").tolist() == [0, 1, 2]


def test_same_file_sees_through_symlinks_and_hard_links(tmp_path):
    a = tmp_path / "a"
    a.write_text("x")
    (tmp_path / "link").symlink_to(a)
    os.link(a, tmp_path / "hard")
    assert same_file(a, tmp_path / "link") and same_file(a, tmp_path / "hard")
    assert same_file(tmp_path / "new", tmp_path / "sub" / ".." / "new")  # neither exists yet
    assert not same_file(a, tmp_path / "other")
