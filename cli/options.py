"""Video-input options that several commands share, declared once as typer ``Annotated`` types
(raw YUV geometry and format, YUV range)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer

Width = Annotated[Optional[int], typer.Option("--width", "-w", help="Frame width (raw YUV).")]
Height = Annotated[Optional[int], typer.Option("--height", "-h", help="Frame height (raw YUV).")]
PixFmt = Annotated[Optional[str], typer.Option(help="Pixel format of raw YUV: yuv420p (default) or yuv420p10le.")]
ColorRange = Annotated[Optional[Literal["limited", "full"]],
                       typer.Option("--range", help="YUV range (default: Y4M tag, else limited).")]
