from dataclasses import replace

import pytest
import torch

from vqe.data.dataset import TrainPatches, window_indices
from vqe.util.errors import VQEError


def test_window_indices_replicate_edges():
    assert window_indices(0, 2, 10).tolist() == [0, 0, 0, 1, 2]
    assert window_indices(9, 2, 10).tolist() == [7, 8, 9, 9, 9]
    assert window_indices(3, 0, 10).tolist() == [3]


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("patch", [16, 24, 32])
def test_patch_shapes(smoke_manifest, n, patch):
    ds = TrainPatches(smoke_manifest, "train", n, patch, seed=1)
    lq, gt = ds[5]
    assert lq.shape == (2 * n + 1, 3, patch, patch) and gt.shape == (3, patch, patch)
    assert lq.dtype == gt.dtype == torch.float32 and 0 <= lq.min() and lq.max() <= 1


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.parametrize("augment", [False, True])
def test_patches_are_aligned(smoke_manifest, augment):
    ds = TrainPatches(smoke_manifest, "train", 1, 32, augment=augment, seed=3)
    for i in range(6):
        lq, gt = ds[i]
        aligned = _psnr(lq[1], gt)
        shifted = _psnr(lq[1][:, 4:, 4:], gt[:, :-4, :-4])
        assert aligned > shifted + 2, (aligned, shifted)


def test_low_res_patches_line_up_with_the_target(smoke_manifest):
    ds = TrainPatches(smoke_manifest, "train", 2, 32, low_res=True, augment=False)
    lq, gt = ds[3]
    assert lq.shape == (5, 3, 16, 16) and gt.shape == (3, 32, 32)
    pooled = torch.nn.functional.avg_pool2d(gt[None], 2)[0]
    assert _psnr(lq[2], pooled) > _psnr(lq[2][:, 2:, 2:], pooled[:, :-2, :-2]) + 1


@pytest.mark.parametrize("augment", [False, True])
def test_sequences_pair_each_gt_frame_with_its_own_window(smoke_manifest, augment):
    """frames_out=3: GT frames first..first+2 and LQ frames first-n..first+2+n, inside the clip."""
    k, n = 3, 1
    # the camera-motion clip: its frames differ enough for the check below (the tiny procedural clips are busy
    # and near-static at this size)
    manifest = replace(smoke_manifest, encodes=[e for e in smoke_manifest.encodes if e.clip == "syn_astronaut"])
    ds = TrainPatches(manifest, "train", n, 32, frames_out=k, augment=augment, seed=2)
    plain = TrainPatches(manifest, "train", n, 32, augment=augment, seed=2)
    for i in (0, 5, len(ds) - 1):  # first frame, middle, last frame of the last clip
        lq, gt = ds[i]
        assert lq.shape == (2 * n + k, 3, 32, 32) and gt.shape == (k, 3, 32, 32)
        for j in range(k):  # the centre of window j is LQ frame j + n: aligned with GT frame j
            assert _psnr(lq[j + n], gt[j]) > max(_psnr(lq[j + n], gt[m]) for m in range(k) if m != j) + 0.5
        # same crop and augmentation as the single-frame sample: its GT frame is one of the k
        assert any(torch.equal(plain[i][1], gt[j]) for j in range(k))
    with pytest.raises(VQEError, match="frames_out"):
        TrainPatches(smoke_manifest, "train", n, 32, frames_out=0)


def test_samples_are_deterministic_and_cover_all_frames(smoke_manifest):
    a = TrainPatches(smoke_manifest, "train", 2, 16, seed=7)
    b = TrainPatches(smoke_manifest, "train", 2, 16, seed=7)
    c = TrainPatches(smoke_manifest, "train", 2, 16, seed=8)
    assert torch.equal(a[4][0], b[4][0]) and not torch.equal(a[4][0], c[4][0])
    assert len(a) == sum(e.frames for e in smoke_manifest.select("train"))
    assert len(TrainPatches(smoke_manifest, "train", 2, 16, length=1000)) == 1000


def test_bad_dataset_arguments(smoke_manifest):
    with pytest.raises(VQEError, match="larger than clip"):
        TrainPatches(smoke_manifest, "train", 1, 4096)
    with pytest.raises(VQEError, match="no encodes in split"):
        TrainPatches(smoke_manifest, "nonexistent", 1, 16)
    with pytest.raises(VQEError, match="divisible by the scale"):
        TrainPatches(smoke_manifest, "train", 1, 15, low_res=True)
