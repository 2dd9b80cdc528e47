"""The one place that finds the native libraries: explicit path, environment variable,
build directories, and an error that says where it looked and how to build."""

from __future__ import annotations

import pytest

from vqa_rt.errors import BackendUnavailableError
from vqa_rt.runtime.engines.native.libraries import (
    KERNELS_ENV,
    PLUGIN_ENV,
    PLUGIN_LIBRARY,
    default_search_dirs,
    find_kernels_library,
    find_plugin,
)


def test_not_found_says_where_it_looked_and_how_to_build(tmp_path):
    empty = tmp_path / "build" / "kernels" / "lib"
    with pytest.raises(BackendUnavailableError) as caught:
        find_plugin(env={}, search_dirs=[empty])
    message = str(caught.value)
    assert f"{PLUGIN_LIBRARY} not found" in message and f"${PLUGIN_ENV} is not set" in message
    assert str(empty / PLUGIN_LIBRARY) in message
    assert "make kernels TENSORRT_ROOT=/path/to/TensorRT" in message and f"set ${PLUGIN_ENV}" in message
    assert "\n" not in message


def test_environment_variable_wins_and_must_name_a_file(tmp_path):
    library = tmp_path / "custom.so"
    library.write_bytes(b"")
    in_build = tmp_path / "lib"
    in_build.mkdir()
    (in_build / PLUGIN_LIBRARY).write_bytes(b"")
    assert find_plugin(env={PLUGIN_ENV: str(library)}, search_dirs=[in_build]) == str(library)
    with pytest.raises(BackendUnavailableError, match=f"\\${PLUGIN_ENV}=.*missing.so: no such file.*make kernels"):
        find_plugin(env={PLUGIN_ENV: str(tmp_path / "missing.so")}, search_dirs=[in_build])


def test_build_directories_in_order_and_explicit_paths(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    (second / PLUGIN_LIBRARY).write_bytes(b"")
    assert find_plugin(env={}, search_dirs=[first, second]) == str(second / PLUGIN_LIBRARY)
    assert find_plugin(second / PLUGIN_LIBRARY, env={PLUGIN_ENV: "/nowhere.so"}) == str(second / PLUGIN_LIBRARY)
    with pytest.raises(BackendUnavailableError, match="nowhere.so: no such file"):
        find_plugin(tmp_path / "nowhere.so")


def test_default_search_starts_at_the_source_tree_build():
    assert default_search_dirs()[0].parts[-3:] == ("build", "kernels", "lib")


def test_kernel_library_has_its_own_variable_and_hint(tmp_path):
    with pytest.raises(BackendUnavailableError, match=f"libvqa_kernels.so not found \\(\\${KERNELS_ENV} is not set.*"
                                                      "build it with `make kernels`"):
        find_kernels_library(env={}, search_dirs=[tmp_path])
