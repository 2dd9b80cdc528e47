"""GPU pre-processing (vqa_rt.runtime.engines.native.gpu_preprocess): the frames the kernel can read, and on a GPU
(pycuda) GpuYuvConverter against runtime/frames/color.py (FP32 max abs error <= 1e-5 of the values' range)
on fresh random 8- and 10-bit frames of odd sizes, with and without resize. The plan scored end to
end with GPU pre-processing is in tests/runtime/engines/test_tensorrt_runner.py; the library's binding in
test_kernel_library.py."""

from __future__ import annotations

import numpy as np
import pytest

from vqa_rt.errors import BackendUnavailableError, InputError
from vqa_rt.runtime.engines.native import gpu_preprocess as gp
from vqa_rt.runtime.engines.native.kernel_library import KernelLibrary
from vqa_rt.runtime.frames.video import Frame

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_frames_the_kernel_cannot_read_are_input_errors():
    def frame(width=7, height=5, bit_depth=8, dtype=np.uint8, chroma=None):
        chroma = chroma or ((height + 1) // 2, (width + 1) // 2)
        return Frame(3, np.zeros((height, width), dtype), np.zeros(chroma, dtype), np.zeros(chroma, dtype), bit_depth)

    assert gp.check_frame(frame()) == (7, 5)
    assert gp.check_frame(frame(bit_depth=10, dtype=np.uint16)) == (7, 5)
    with pytest.raises(InputError, match="frame 3: the U plane has shape \\(2, 4\\), expected \\(3, 4\\)"):
        gp.check_frame(frame(chroma=(2, 4)))
    with pytest.raises(InputError, match="holds uint8, expected uint16 for 10-bit video"):
        gp.check_frame(frame(bit_depth=10))
    with pytest.raises(InputError, match="bit depth 7"):
        gp.check_frame(frame(bit_depth=7))


# ---------------------------------------------------------------- on a GPU (pycuda)

@pytest.fixture(scope="module")
def pycuda_stream(gpu_kernels):
    """(pycuda.driver, a stream) with device 0's primary context current; skips naming what is missing."""
    from vqa_rt.runtime.engines.backends.tensorrt import import_pycuda

    try:
        cuda = import_pycuda()
    except BackendUnavailableError as exc:
        pytest.skip(str(exc))
    cuda.init()
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        yield cuda, cuda.Stream()
    finally:
        cuda.Context.pop()
        context.detach()


def _random_frame(width, height, bit_depth, seed, index=0) -> Frame:
    rng = np.random.default_rng(seed)
    dtype, top = (np.uint8, 255) if bit_depth == 8 else (np.uint16, (1 << bit_depth) - 1)
    chroma = ((height + 1) // 2, (width + 1) // 2)
    planes = [rng.integers(0, top + 1, shape).astype(dtype) for shape in ((height, width), chroma, chroma)]
    return Frame(index, *planes, bit_depth)


CASES = [  # (width, height, bit depth, matrix, range, analysis size)
    (97, 61, 8, "bt709", "limited", None),
    (97, 61, 10, "bt601", "full", None),
    (97, 61, 8, "bt709", "limited", (131, 77)),  # enlarge, odd
    (97, 61, 10, "bt709", "limited", (64, 40)),  # shrink (area)
    (131, 75, 10, "bt601", "limited", (150, 41)),  # fewer pixels, one axis grows
    (64, 49, 8, "bt601", "full", (64, 49)),  # the frame's own size: no resize
]


@pytest.mark.gpu
@pytest.mark.parametrize("width,height,bit_depth,matrix,color_range,size", CASES,
                         ids=["-".join(map(str, c[:5])) + f"-{'x'.join(map(str, c[5])) if c[5] else 'native'}"
                              for c in CASES])
def test_converter_fp32_matches_color_py(gpu_kernels, pycuda_stream, width, height, bit_depth, matrix, color_range,
                                         size):
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    cuda, stream = pycuda_stream
    converter = gp.GpuYuvConverter(KernelLibrary(gpu_kernels.path), cuda, matrix=matrix, color_range=color_range,
                                   mean=MEAN, std=STD, size=size, dtype="float32")
    # Three frames through two staging slots: a slot is reused while the stream is busy.
    frames = [_random_frame(width, height, bit_depth, seed=1000 * bit_depth + width + k, index=k) for k in range(3)]
    shape = converter.output_shape(width, height)
    outputs = [cuda.mem_alloc(converter.output_nbytes(width, height)) for _ in frames]
    try:
        for frame, out in zip(frames, outputs):
            converter.convert(frame, int(out), stream)
        stream.synchronize()
        for frame, out in zip(frames, outputs):
            actual = np.empty(shape, np.float32)
            cuda.memcpy_dtoh(actual, out)
            expected = normalize(yuv_to_rgb(frame, matrix, color_range, size), MEAN, STD)
            assert actual.shape == expected.shape
            assert np.abs(actual - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max()), f"frame {frame.index}"
    finally:
        converter.close()
        for out in outputs:
            out.free()


@pytest.mark.gpu
def test_converter_fp16_output_and_per_call_range(gpu_kernels, pycuda_stream):
    from vqa_rt.runtime.frames.color import normalize, yuv_to_rgb

    cuda, stream = pycuda_stream
    converter = gp.GpuYuvConverter(KernelLibrary(gpu_kernels.path), cuda, mean=MEAN, std=STD, size=(101, 67),
                                   dtype="float16")
    frame = _random_frame(97, 61, 10, seed=7)
    out = cuda.mem_alloc(converter.output_nbytes(97, 61))
    try:
        converter.convert(frame, int(out), stream, color_range="full")
        stream.synchronize()
        actual = np.empty(converter.output_shape(97, 61), np.float16)
        cuda.memcpy_dtoh(actual, out)
    finally:
        converter.close()
        out.free()
    expected = normalize(yuv_to_rgb(frame, "bt709", "full", (101, 67)), MEAN, STD)
    np.testing.assert_allclose(actual.astype(np.float32), expected, rtol=2 ** -10, atol=2 ** -10)
