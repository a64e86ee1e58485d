"""The one progress bar of long loops (distillation, teacher, SSL and MAE training): count, loss, time, ETA."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def loss_progress(quiet: bool) -> Progress:
    """A bar whose tasks carry a ``loss`` field; ``quiet`` disables it (the loop runs the same)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=quiet, transient=False)
