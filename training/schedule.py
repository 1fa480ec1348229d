"""The learning-rate schedule, and the clock that turns a time budget into its step count."""

from __future__ import annotations

import math

from .config import TrainConfig

ESTIMATE_AFTER_STEPS = 10  # timed steps (after the compiling one) before a time budget -> steps
REESTIMATE_EVERY = 50  # steps between refreshed estimates
BUDGET_MARGIN = 0.97  # share of the remaining time for steps; the rest for evals and saves


class BudgetClock:
    """Turns a time budget into the step count the learning-rate schedule spans.

    A first estimate comes after ``ESTIMATE_AFTER_STEPS`` timed steps; it is refreshed every
    ``REESTIMATE_EVERY`` steps from the average pace since then, so that the decay ends at the
    budget even when the first steps were unrepresentative or the machine got busier or quieter
    (one early estimate left the last part of 10-minute runs at a wrong learning rate).
    """

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._since: tuple[int, float] | None = None  # (step, elapsed s) after the first step

    def horizon(self, step: int, elapsed_s: float) -> int | None:
        """A new horizon at this step (after ``step`` steps, ``elapsed_s`` seconds in), or None
        when no estimate is due."""
        if self._since is None:
            self._since = (step, elapsed_s)  # the first step compiles: leave it out
            return None
        timed = step - self._since[0]
        due = timed == ESTIMATE_AFTER_STEPS or (
            timed > ESTIMATE_AFTER_STEPS and timed % REESTIMATE_EVERY == 0
        )
        if not due:
            return None
        per_step = max(1e-9, elapsed_s - self._since[1]) / timed
        left = (self.budget_s - elapsed_s) * BUDGET_MARGIN / per_step
        return step + max(1, int(left))


def warmup_steps(cfg: TrainConfig, horizon: int | None) -> int:
    # Short runs (tests, small fine-tunes) would otherwise spend all their steps warming up.
    return cfg.warmup_steps if horizon is None else min(cfg.warmup_steps, horizon // 5)


def learning_rate_at(cfg: TrainConfig, base_lr: float, step: int, horizon: int | None) -> float:
    """Linear warm-up, then ``cfg.schedule``'s decay to ``min_lr_ratio * base_lr`` at the
    horizon: cosine over all the steps after warm-up, or (wsd) the peak rate until the last
    ``decay_fraction`` of the horizon and a linear decay over those."""
    warm = warmup_steps(cfg, horizon)
    if step < warm:
        return base_lr * (step + 1) / warm
    if horizon is None:
        return base_lr
    low = cfg.min_lr_ratio * base_lr
    if cfg.schedule == "wsd":
        decay_start = max(warm, horizon - round(cfg.decay_fraction * horizon))
        progress = min(1.0, max(0, step - decay_start) / max(1, horizon - decay_start))
        return base_lr - progress * (base_lr - low)
    progress = min(1.0, (step - warm) / max(1, horizon - warm))
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - low)
