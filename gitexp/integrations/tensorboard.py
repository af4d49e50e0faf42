"""A drop-in for torch.utils.tensorboard's SummaryWriter that records a run instead of event files.

    from gitexp.tensorboard import SummaryWriter   # was: from torch.utils.tensorboard import SummaryWriter

add_scalar(tag, value, step) is the metric `tag`; add_scalars(main, {tag: value}) the metrics
`main/tag`; add_hparams the params and its metrics; add_text, add_figure and add_image
artifacts `text/<tag>/<step>.txt`, `figures/<tag>/<step>.png` and `images/<tag>/<step>.png`
(step 0 when none is given). The run is named after log_dir's last part (with comment added)
and ends at close(), or with the `with` block; a method of the original that is not drawn here
(add_histogram, add_graph...) is accepted, warned of once and does nothing. No framework is
needed: images may be numpy arrays or torch tensors, in CHW (the default), HWC or HW layout.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from gitexp.integrations.guard import guarded, report
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import number, numbers_of, plain
from gitexp.tracking.liverun import Run


def _name(log_dir: str | os.PathLike[str] | None, comment: str) -> str | None:
    base = Path(log_dir).name if log_dir else ""
    return (base + comment) or None


def image_array(image: Any, dataformats: str = "CHW") -> Any:
    """*image* (numpy array or torch tensor) as a numpy HWC (or HW) array for matplotlib to save:
    floats stay in [0, 1], anything else becomes uint8."""
    import numpy as np

    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    layout = dataformats.upper()
    if layout not in ("CHW", "HWC", "HW"):
        raise ValueError(f"dataformats {dataformats!r} is not one of CHW, HWC, HW")
    if array.ndim != len(layout):
        raise ValueError(f"an image in {layout} layout has {len(layout)} dimensions; this one has shape {array.shape}")
    if layout == "CHW":
        array = np.transpose(array, (1, 2, 0))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype.kind == "f":
        return np.clip(array, 0.0, 1.0)
    return np.clip(array, 0, 255).astype(np.uint8)


class SummaryWriter:
    def __init__(self, log_dir: str | os.PathLike[str] | None = None, comment: str = "", purge_step: int | None = None,
                 max_queue: int = 10, flush_secs: int = 120, filename_suffix: str = "", *, run: Run | None = None,
                 experiment: str | None = None, params: dict[str, Any] | None = None) -> None:
        # purge_step, max_queue, flush_secs and filename_suffix concern event files: there are none.
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self._holder = RunHolder(run, name=_name(log_dir, comment), experiment=experiment, params=params)
        self._holder.get()

    @property
    def run(self) -> Run | None:
        return self._holder.last

    def get_logdir(self) -> str | None:
        return self.log_dir

    @guarded
    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None, walltime: float | None = None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        value = number(scalar_value)
        if value is None:
            raise ValueError(f"add_scalar({tag!r}): {scalar_value!r} is not a number")
        self._holder.get().log_metric(tag, value, global_step, walltime)

    @guarded
    def add_scalars(self, main_tag: str, tag_scalar_dict: dict[str, Any], global_step: int | None = None,
                    walltime: float | None = None) -> None:
        self._holder.get().log_metrics(numbers_of(tag_scalar_dict, f"{main_tag}/"), global_step, walltime)

    @guarded
    def add_hparams(self, hparam_dict: dict[str, Any], metric_dict: dict[str, Any],
                    hparam_domain_discrete: dict[str, list[Any]] | None = None, run_name: str | None = None,
                    global_step: int | None = None) -> None:
        run = self._holder.get()
        known = run.params
        run.log_params({key: value for key, value in plain(hparam_dict).items() if key not in known})
        run.log_metrics(numbers_of(metric_dict), step=global_step)

    @staticmethod
    def _path(kind: str, tag: str, step: int | None, suffix: str) -> str:
        return f"{kind}/{tag.strip('/')}/{0 if step is None else int(step)}{suffix}"

    @guarded
    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        self._holder.get().log_text(str(text_string), self._path("text", tag, global_step, ".txt"))

    @guarded
    def add_figure(self, tag: str, figure: Any, global_step: int | None = None, close: bool = True,
                   walltime: float | None = None) -> None:
        figures = figure if isinstance(figure, list) else [figure]
        for index, each in enumerate(figures):
            suffix = ".png" if len(figures) == 1 else f"-{index}.png"
            self._holder.get().log_figure(each, self._path("figures", tag, global_step, suffix))
            if close:
                import matplotlib.pyplot as plt

                plt.close(each)

    @guarded
    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = None, walltime: float | None = None,
                  dataformats: str = "CHW") -> None:
        import matplotlib.image

        array = image_array(img_tensor, dataformats)
        with tempfile.TemporaryDirectory(prefix="gitexp-image-") as folder:
            path = Path(folder) / "image.png"
            matplotlib.image.imsave(path, array, cmap="gray" if array.ndim == 2 else None,
                                    vmin=0, vmax=1 if array.dtype.kind == "f" else 255)
            self._holder.get().log_artifact(path, self._path("images", tag, global_step, ".png"))

    @guarded
    def flush(self) -> None:
        if self._holder.started:
            self._holder.get().checkpoint()

    @guarded
    def close(self) -> None:
        self._holder.end("FINISHED")

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        status = "FINISHED" if exc is None else "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            self._holder.end(status, exc)
        except Exception as error:
            report(self, "close", error)

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("add_"):
            raise AttributeError(name)

        def ignored(*args: Any, **kwargs: Any) -> None:
            report(self, name, NotImplementedError("gitexp's SummaryWriter does not record this; it is ignored"))

        return ignored
