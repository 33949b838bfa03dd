"""Scoring a restored clip against its ground truth.

Per-metric definitions live in `fidelity` (PSNR, PSNR-Y, SSIM, MS-SSIM), `perceptual` (LPIPS, tLP),
`flow` (optical flow), `temporal` (tPSNR, tSSIM, tOF), `vmaf` and `noref` (NIQE). `reference` scores the
per-frame metrics against a reference clip (training validation); `panel` scores Table 1's whole panel.
This file imports nothing, so code that needs one metric loads that metric alone.
"""
