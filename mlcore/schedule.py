"""Time-budgeted step schedule shared by pretraining and fine-tuning."""

from __future__ import annotations

import math
import time


class StepBudget:
    """Progress of a run as max(steps done / planned steps, elapsed / time budget).

    The cosine learning-rate decay follows that progress, so when the time budget is
    the binding limit the schedule still ends at zero when the time is up (stopping a
    cosine schedule half-way leaves the learning rate high), and a machine that is
    slow for a while (shared cores) costs steps, not a broken schedule."""

    def __init__(self, total: int, time_budget_s: float | None, warmup: int = 0,
                 warmup_fraction: float = 0.0):
        """``warmup``: linear warm-up over that many steps; ``warmup_fraction``: over that
        share of the progress instead, so a time budget that ends the run after fewer
        steps than planned still gets past its warm-up."""
        self.planned = max(1, int(total))
        self.budget = time_budget_s
        self.warmup = warmup
        self.warmup_fraction = warmup_fraction
        self.start = time.perf_counter()
        self.step = 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def progress(self) -> float:
        p = self.step / self.planned
        if self.budget is not None:
            p = max(p, self.elapsed / max(self.budget, 1e-9))
        return min(1.0, p)

    @property
    def total(self) -> int:
        """Expected number of steps at the current pace."""
        p = self.progress
        return self.planned if p <= 0 else max(self.step, min(self.planned, round(self.step / p)))

    def lr_factor(self) -> float:
        if self.warmup_fraction > 0 and self.progress < self.warmup_fraction:
            # (step + 1) / planned: a run that the steps end warms up as over that many steps
            return max(self.progress, (self.step + 1) / self.planned) / self.warmup_fraction
        if self.step < self.warmup:
            return (self.step + 1) / self.warmup
        return 0.5 * (1 + math.cos(math.pi * self.progress))

    def tick(self) -> bool:
        """Count a finished step; returns False once the run is complete."""
        self.step += 1
        return self.progress < 1.0
