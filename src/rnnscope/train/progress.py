"""Progress while training: a rich bar on a terminal, a few log lines elsewhere (CI, pipes)."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)


class Progress:
    """Shows step, loss and samples/s.

    On a terminal (and with --train.progress true) a rich progress bar on stderr; otherwise
    about ten INFO log lines over the whole run, so CI logs stay short.
    """

    def __init__(self, total_steps: int, enabled: bool, start_step: int = 0) -> None:
        self.total = max(total_steps, 1)
        self.enabled = enabled
        self.bar = None
        self.last_logged_tenth = start_step * 10 // self.total
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self.task = self.bar.add_task("train", total=self.total, completed=start_step, info="")
            self.bar.start()

    def update(self, step: int, epoch: int, loss: float, val_loss: float | None,
               samples_per_s: float) -> None:
        """Called at every log step."""
        val = f"  val {val_loss:.4g}" if val_loss is not None else ""
        info = f"epoch {epoch}  loss {loss:.4g}{val}  {samples_per_s:,.0f} samples/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=min(step, self.total), info=info)
            return
        tenth = step * 10 // self.total
        if self.enabled and tenth > self.last_logged_tenth:
            self.last_logged_tenth = tenth
            logger.info("step %d/%d  %s", step, self.total, info)
        else:
            logger.debug("step %d/%d  %s", step, self.total, info)

    def advance(self, step: int) -> None:
        """Move the bar between log steps."""
        if self.bar is not None:
            self.bar.update(self.task, completed=min(step, self.total))

    def close(self) -> None:
        """Stop the bar (leaving its last state on screen)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
