"""Frame scorers: selected frames -> per-frame metrics, from an exported model (FR, NR; on the GPU
for FR plans) or a baseline metric (PSNR, SSIM, MS-SSIM, VMAF)."""
