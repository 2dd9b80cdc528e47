"""The optimisation profile of a plan: the frame and batch sizes it accepts, derived from the graph (no TensorRT)."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import ModelProto

from vqa_rt.errors import EngineBuildError

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class ShapeRange:
    """The frame sizes and batch sizes a plan accepts; TensorRT tunes for the ``opt`` ones."""

    min_size: Size = (640, 360)
    opt_size: Size = (1920, 1080)
    max_size: Size = (3840, 2160)
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4

    def axes(self) -> dict[str, tuple[int, int, int]]:
        """(min, opt, max) of each named dynamic axis this range fixes."""
        sizes = (self.min_size, self.opt_size, self.max_size)
        return {
            "batch": (self.min_batch, self.opt_batch, self.max_batch),
            "height": tuple(size[1] for size in sizes),
            "width": tuple(size[0] for size in sizes),
        }


@dataclass(frozen=True)
class InputProfile:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def describe(self) -> str:
        dims = [str(lo) if lo == hi else f"{lo}..{opt}..{hi}" for lo, opt, hi in zip(self.min, self.opt, self.max)]
        return "x".join(f"[{d}]" if ".." in d else d for d in dims)


def graph_input_shapes(model: ModelProto) -> dict[str, list[int | str | None]]:
    """Each graph input's dimensions: an int, a symbolic name, or None (unknown)."""
    initializers = {t.name for t in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]
    return shapes


def derive_profile(input_shapes: dict[str, list[int | str | None]], dynamic_axes: dict[str, dict[str, str]],
                   shapes: ShapeRange = ShapeRange(), min_size: int = 1) -> dict[str, InputProfile]:
    """Min/opt/max shapes of every input: static dimensions as they are; dynamic ones named (by the
    ``vqa_rt.dynamic_axes`` metadata, else the graph's dimension name) ``batch``, ``height`` or ``width``
    from ``shapes``. Raises :class:`EngineBuildError` for a range that is empty, below the model's
    ``min_size``, or an axis it cannot name."""
    ranges = shapes.axes()
    for axis, (low, opt, high) in ranges.items():
        if not 1 <= low <= opt <= high:
            raise EngineBuildError(f"the {axis} range must satisfy 1 <= min <= opt <= max; got {low}, {opt}, {high}")
    for axis in ("height", "width"):
        if ranges[axis][0] < min_size:
            raise EngineBuildError(f"the minimum {axis} {ranges[axis][0]} is below the model's minimum frame size of "
                                   f"{min_size} pixels (raise --min-size)")
    profile = {}
    for name, dims in input_shapes.items():
        named = {int(axis): axis_name for axis, axis_name in (dynamic_axes.get(name) or {}).items()}
        low, opt, high = [], [], []
        for index, dim in enumerate(dims):
            if isinstance(dim, int) and dim > 0 and index not in named:
                triple = (dim, dim, dim)
            else:
                axis_name = named.get(index, dim if isinstance(dim, str) else None)
                if axis_name not in ranges:
                    raise EngineBuildError(
                        f"input {name!r}: cannot choose a range for dynamic axis {index} ({axis_name or 'unnamed'}); "
                        f"vqa-rt derives profiles for axes named {', '.join(ranges)}")
                triple = ranges[axis_name]
            for values, value in zip((low, opt, high), triple):
                values.append(value)
        profile[name] = InputProfile(tuple(low), tuple(opt), tuple(high))
    return profile
