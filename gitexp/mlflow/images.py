"""log_figure and log_image for the drop-in: figures and arrays become image artifacts.

An image is encoded by Pillow when it is installed (the same bytes MLflow writes); a numpy
array without Pillow is encoded as PNG here, with zlib, so numpy alone is enough.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import PurePosixPath
from typing import Any

from gitexp.mlflow.exceptions import MlflowException


def log_figure(run: Any, figure: Any, artifact_file: str, save_kwargs: dict[str, Any] | None) -> None:
    suffix = PurePosixPath(artifact_file).suffix.lower().lstrip(".")
    if callable(getattr(figure, "write_html", None)) and suffix == "html":  # a plotly figure
        buffer = io.StringIO()
        figure.write_html(buffer, include_plotlyjs="cdn")
        run.log_text(buffer.getvalue(), artifact_file)
        return
    if not callable(getattr(figure, "savefig", None)):
        raise MlflowException(f"log_figure needs a matplotlib figure (or a plotly figure and an .html name), "
                              f"not {type(figure).__name__}")
    if not save_kwargs and suffix in ("png", "svg", "pdf"):
        run.log_figure(figure, artifact_file)
        return
    image = io.BytesIO()
    figure.savefig(image, format=suffix or "png", **(save_kwargs or {}))
    _log_bytes(run, image.getvalue(), artifact_file)


def _log_bytes(run: Any, data: bytes, name: str) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="gitexp-mlflow-") as tmp:
        path = Path(tmp) / PurePosixPath(name).name
        path.write_bytes(data)
        run.log_artifact(path, name)


def to_uint8(array: Any) -> Any:
    """MLflow's rules: 2-D, or 3-D with 1, 3 or 4 channels; integers in [0, 255]; floats and bools scaled
    from [0, 1] (floats outside it are min-max rescaled first, with a warning)."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise MlflowException(f"log_image: pixel type {array.dtype} is not supported; use integers, floats or bools")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise MlflowException(f"log_image: an array of shape {array.shape} is not an image; use (H, W) or "
                              "(H, W, C) with C = 1 (grayscale), 3 (RGB) or 4 (RGBA)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    integer = array.dtype.kind in "iu"
    if array.size and (array.min() < 0 or array.max() > (255 if integer else 1)):
        if integer:
            raise MlflowException(f"log_image: integer pixel values must lie in [0, 255]; found "
                                  f"{array.min()}..{array.max()}")
        warnings.warn("gitexp.mlflow: float pixel values outside [0, 1] are rescaled to it (min-max)",
                      UserWarning, stacklevel=4)
        array = (array - array.min()) / (array.max() - array.min())
    return (array if integer else array * 255).astype(np.uint8)


def png_bytes(pixels: Any) -> bytes:
    """A PNG (8 bits per channel, no filter) of a uint8 array of shape (H, W) or (H, W, 3|4)."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def encode(image: Any, suffix: str) -> bytes:
    """The image file bytes for a PIL image or a numpy array, in the format of *suffix*."""
    fmt = {"jpg": "JPEG", "jpeg": "JPEG"}.get(suffix, suffix.upper() or "PNG")
    if hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return buffer.getvalue()
    pixels = to_uint8(image)
    try:
        from PIL import Image
    except ImportError:
        if fmt != "PNG":
            raise MlflowException(f"log_image: saving as {suffix!r} needs Pillow (pip install pillow); "
                                  "without it, use a .png name") from None
        return png_bytes(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def log_image(run: Any, image: Any, artifact_file: str | None, key: str | None, step: int | None) -> None:
    if (artifact_file is None) == (key is None):
        raise MlflowException("log_image needs exactly one of artifact_file or key")
    if key is not None:
        if not re.fullmatch(r"[a-zA-Z0-9_\-./ ]+", key):
            raise MlflowException(f"log_image: key {key!r} may only hold letters, digits, '_', '-', '.', ' ', '/'")
        artifact_file = f"images/{key.replace('/', '~')}+step+{step or 0}.png"
    suffix = PurePosixPath(artifact_file).suffix.lower().lstrip(".")  # type: ignore[arg-type]
    _log_bytes(run, encode(image, suffix or "png"), artifact_file)  # type: ignore[arg-type]
