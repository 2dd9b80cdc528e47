"""Baseline full-reference metrics (PSNR, SSIM, MS-SSIM on luma; VMAF through ffmpeg) as frame scorers."""
