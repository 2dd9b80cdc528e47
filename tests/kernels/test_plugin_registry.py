"""The plugin library in TensorRT's own plugin registry, through vqa-rt's ``register_plugin``.

Needs TensorRT's Python bindings (the full ``tensorrt``, or the lean runtime the test extra installs;
and TensorRT for RTX's, from the rtx extra; the registries work without a GPU) and the plugin built against headers of the same major release
($TENSORRT_ROOT; CI has none, so there it skips). TensorRT
loads the library (``getCreators``, ``setLoggerFinder``), finds the creator by name, version and
namespace, and creates plugins from fields as its ONNX parser does from a node's attributes (the
plugin's metadata string shows what it parsed). Engines and enqueue need a GPU: test_tensorrt_runner.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from vqa_rt.runtime.engines.native.libraries import VQA_PLUGIN, register_plugin

pytestmark = pytest.mark.slow


def _header_major(include_dir) -> int:
    text = (include_dir / "NvInferVersion.h").read_text()
    match = re.search(r"#define\s+(?:TRT_MAJOR_ENTERPRISE|NV_TENSORRT_MAJOR)\s+(\d+)", text)
    assert match, "no major version in NvInferVersion.h"
    return int(match.group(1))


@pytest.fixture(scope="module", params=["tensorrt", "rtx"])
def trt(kernel_build, request):
    """TensorRT's bindings (full or lean runtime, of the headers' major release), then TensorRT for RTX's (which
    takes plugins built against the public TensorRT 10/11 headers)."""
    if not kernel_build.with_plugin:
        pytest.skip("TensorRT headers not found: set TENSORRT_ROOT to a TensorRT root with include/NvInferRuntime.h")
    if request.param == "rtx":
        from vqa_rt.errors import BackendUnavailableError
        from vqa_rt.runtime.engines.backends.trt_flavours import RTX, import_flavour

        try:
            return import_flavour(RTX)
        except BackendUnavailableError as exc:
            pytest.skip(str(exc))
    module = request.getfixturevalue("tensorrt_bindings")
    headers = _header_major(kernel_build.tensorrt_include)
    if int(module.__version__.split(".")[0]) != headers:
        pytest.skip(f"the plugin was built against TensorRT {headers} headers, the bindings are {module.__version__}")
    return module


@pytest.fixture(scope="module")
def creator(trt, kernel_build):
    assert register_plugin(trt, str(kernel_build.plugin)) == str(kernel_build.plugin)
    found = trt.get_plugin_registry().get_creator(VQA_PLUGIN.name, VQA_PLUGIN.version, VQA_PLUGIN.namespace)
    assert found is not None
    return found


def _fields(trt, values: dict, dtype=np.int32):
    kind = trt.PluginFieldType.INT32 if dtype == np.int32 else trt.PluginFieldType.INT64
    return trt.PluginFieldCollection([trt.PluginField(name, np.array(v, dtype), kind) for name, v in values.items()])


def test_tensorrt_registers_the_creator_with_its_fields(trt, creator, kernel_build):
    assert (creator.name, creator.plugin_version, creator.plugin_namespace) == ("VqaDeformConv2d", "1", "vqa_rt")
    assert creator.interface_info.kind == "PLUGIN CREATOR_V3ONE"
    assert [(f.name, f.type) for f in creator.field_names] == [
        (name, trt.PluginFieldType.INT32)
        for name in ("strides", "pads", "dilations", "group", "offset_group", "kernel_shape")]
    # Registering again (another runner, another engine) is a no-op.
    assert register_plugin(trt, str(kernel_build.plugin)) == str(kernel_build.plugin)


@pytest.mark.parametrize("dtype", [np.int32, np.int64], ids=["int32", "int64"])
def test_tensorrt_creates_the_plugin_from_onnx_attributes(trt, creator, dtype):
    attributes = {"strides": [2, 1], "pads": [1, 0, 2, 1], "dilations": [1, 2], "group": [2], "offset_group": [4],
                  "kernel_shape": [3, 3]}
    plugin = creator.create_plugin("deform0", _fields(trt, attributes, dtype), trt.TensorRTPhase.BUILD)
    assert plugin is not None
    core = plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
    assert (core.plugin_name, core.plugin_version, core.plugin_namespace) == ("VqaDeformConv2d", "1", "vqa_rt")
    build = plugin.get_capability_interface(trt.PluginCapabilityType.BUILD)
    assert build.num_outputs == 1
    assert build.metadata_string == "strides=2,1 pads=1,0,2,1 dilations=1,2 group=2 offset_group=4 kernel_shape=3,3"


def test_defaults_fill_absent_attributes(trt, creator):
    plugin = creator.create_plugin("deform1", _fields(trt, {}), trt.TensorRTPhase.BUILD)
    build = plugin.get_capability_interface(trt.PluginCapabilityType.BUILD)
    assert build.metadata_string == "strides=1,1 pads=0,0,0,0 dilations=1,1 group=1 offset_group=1 kernel_shape=0,0"


@pytest.mark.parametrize("attributes", [{"pads": [1, 1, 1]}, {"strides": [0, 1]}, {"group": [0]},
                                        {"dilations": [1, 1, 1]}],
                         ids=["three-pads", "zero-stride", "zero-group", "three-dilations"])
def test_invalid_attributes_create_no_plugin(trt, creator, attributes):
    assert creator.create_plugin("bad", _fields(trt, attributes), trt.TensorRTPhase.BUILD) is None
