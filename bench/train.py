"""Training speed and quality on this machine: ghostwrite's loop against PyTorch's, one run.

    python bench/train.py [--minutes 1] [--round-s 5] [--loops ghostwrite,torch]
        [--batch-size 8] [--lr 3e-3] [--dropout 0] [--min-lr-ratio 0.1]

The article's model (ctx 128, n_emb 128, 4 heads, 3 layers) on ../shared/data/tinyshakespeare.txt
with nanoGPT's split (first 90% train, last 10% validation). Loops:

  ghostwrite  ``ghostwrite train``'s own step (``Run.train_step``) with its defaults: random
              windows, the learning-rate schedule over the time budget, gradient clipping, weight
              decay on matrices only, compiled step split over CPU streams. ``--batch-size``,
              ``--lr``, ``--dropout`` and ``--min-lr-ratio`` default to ``ghostwrite train``'s
              (batch 64, lr 1e-3, dropout 0.1 is the article's recipe).
  torch       ``ghostwrite+gpt2``'s model, recipe and batches in PyTorch 2 (eager,
              ``--torch-threads`` threads, ``F.scaled_dot_product_attention``). Needs the
              ``bench`` extra; skipped with a message when torch is missing.
  article     the article's MLX loop: fixed shuffled chunks of 128, batch 64, AdamW(1e-3),
              dropout 0.1, uncompiled.

``ghostwrite:N`` and ``torch:N`` pick N streams / N threads (e.g. ``--loops
ghostwrite,ghostwrite:1,torch:2,torch:1``: on a busy machine PyTorch with a thread per core
collapses).

Recipe variants of the ghostwrite loop add ``+change`` or ``+change=value`` to its name, e.g.
``--loops ghostwrite+gpt2,ghostwrite+gpt2+rope,ghostwrite+gpt2+wsd=0.4``: each change is one
of ``RECIPE_CHANGES`` (architecture options from the nanoGPT speedrun, schedules, weight
averaging, learning rates), applied in order over ``ghostwrite train``'s defaults. The PyTorch
loop implements GPT-2's architecture only: compare it with ``ghostwrite+gpt2``.

Each loop trains ``--minutes`` of training time; the loops take turns every ``--round-s``
seconds, so they all see the same background load. The first step, which builds MLX's JIT
kernels, does not count as training time. Tokens/s is the median over rounds (the first round
left out) and ratios are taken per round. Every
``--eval-every-s`` seconds of a loop's training its clock stops and it is scored on the same
fixed validation windows: val loss (nats/char) after equal training time. Writes results.json
and, with matplotlib (the ``bench`` extra), loss_vs_time.png. For reference: a Kneser-Ney
6-gram scores 1.5385 on this split, nanoGPT's char model 1.47.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# isort: off
from ghostwrite.model import PRESETS, backend

backend.setup_mlx()  # before mlx.core: the fast BLAS
import mlx.core as mx

# isort: on
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map

from ghostwrite.model.config import GPTConfig
from ghostwrite.model.gpt import GPT, cross_entropy
from ghostwrite.training.config import OPTIMIZERS, TrainConfig
from ghostwrite.training.evaluate import predictions, scoring_windows
from ghostwrite.training.optimizers import is_hidden_matrix
from ghostwrite.training.progress import Reporter
from ghostwrite.training.schedule import BudgetClock, learning_rate_at
from ghostwrite.training.signals import StopFlag
from ghostwrite.training.step import step_seed, windows
from ghostwrite.training.tokens import TokenData
from ghostwrite.training.train import Run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
KN6_NATS = 1.5385  # Kneser-Ney 6-gram on nanoGPT's split
ARTICLE_BATCH = 64  # the article's loop keeps its own recipe: batch 64, lr 1e-3, dropout 0.1
EVAL_BATCH = 64
RECIPE = TrainConfig()  # ghostwrite's optimisation defaults, shared by the PyTorch loop


@dataclass
class Recipe:
    """A variant of ``ghostwrite train``'s defaults: TrainConfig fields (``architecture`` merged
    over the default's) and the decay of a weight average evaluated in place of the weights."""

    train: dict[str, object] = dataclasses.field(default_factory=dict)
    architecture: dict[str, object] = dataclasses.field(default_factory=dict)
    ema: float = 0.0


def _arch(**changes: object) -> Callable[[str | None], Recipe]:
    return lambda _value: Recipe(architecture=changes)


RECIPE_CHANGES: dict[str, Callable[[str | None], Recipe]] = {
    # GPT-2's architecture and the cosine schedule (the PyTorch loop's model).
    "gpt2": lambda _value: Recipe(train={"architecture": {}, "schedule": "cosine"}),
    "rope": _arch(position="rope"),
    "learned": _arch(position="learned"),
    "qknorm": _arch(qk_norm=True),
    "relu2": _arch(activation="relu2"),
    "gelu": _arch(activation="gelu"),
    "ve": _arch(value_embeds=True),
    "softcap": lambda value: Recipe(architecture={"logit_cap": float(value or 30)}),
    "wsd": lambda value: Recipe(train={"schedule": "wsd", "decay_fraction": float(value or 0.3)}),
    "cosine": lambda _value: Recipe(train={"schedule": "cosine"}),
    "ema": lambda value: Recipe(ema=float(value or 0.999)),
    "lr": lambda value: Recipe(
        train={"learning_rate": float(value or RECIPE.scratch_learning_rate)}
    ),
    "muonlr": lambda value: Recipe(train={"muon_learning_rate": float(value or 0.02)}),
}


def parse_recipe(changes: list[str]) -> tuple[dict[str, object], float]:
    """``["rope", "wsd=0.4"]`` -> TrainConfig fields over the defaults, and the EMA decay."""
    train: dict[str, object] = {"architecture": dict(RECIPE.architecture)}
    ema = 0.0
    for change in changes:
        name, _, value = change.partition("=")
        if name not in RECIPE_CHANGES:
            raise SystemExit(f"unknown recipe change {name!r} (one of {', '.join(RECIPE_CHANGES)})")
        recipe = RECIPE_CHANGES[name](value or None)
        architecture = recipe.train.get("architecture", train["architecture"])  # {}: reset
        train |= recipe.train
        train["architecture"] = {**architecture, **recipe.architecture}
        ema = recipe.ema or ema
    return train, ema


@dataclass
class Loop:
    name: str
    step: Callable[[], None]
    tick: Callable[[int, float], None]  # steps and training seconds so far, after each step
    val_loss: Callable[[], float]  # mean over fixed windows, each starting without context
    text_loss: Callable[[], float]  # over the whole split, each character with its context
    tokens_per_step: int
    learning_rate: Callable[[], float]  # the rate of the next step
    note: str = ""


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    n = int(0.9 * len(data))
    return data[:n], data[n:]


def val_starts(val: np.ndarray, ctx: int, count: int) -> np.ndarray:
    """Fixed, evenly spaced validation windows (identical for every loop)."""
    return np.linspace(0, len(val) - ctx - 1, count).round().astype(np.int64)


def mlx_text_loss(model: GPT, val: np.ndarray) -> float:
    """``ghostwrite eval``'s measure: every character of the split predicted once, from up to a
    context of the text before it (what an n-gram's per-character loss measures too)."""
    model.eval()
    nll, _ = predictions(model, val)
    model.train()
    return float(nll[1:].mean())


def mlx_val_loss(model: GPT, val: np.ndarray, count: int) -> float:
    starts = val_starts(val, model.cfg.ctx_len, count)
    model.eval()
    total = 0.0
    for i in range(0, count, EVAL_BATCH):
        x, y = windows(val, starts[i : i + EVAL_BATCH], model.cfg.ctx_len)
        total += cross_entropy(model, x, y).item() * len(x)
    model.train()
    return total / count


def budget_ticker(
    budget_s: float, set_horizon: Callable[[int], None]
) -> Callable[[int, float], None]:
    """``Run.loop``'s time budget -> step count, so a cosine schedule spans the budget."""
    clock = BudgetClock(budget_s)

    def tick(step: int, elapsed: float) -> None:
        horizon = clock.horizon(step, elapsed)
        if horizon is not None:
            set_horizon(horizon)

    return tick


def ghostwrite_loop(
    data_path: Path,
    train: np.ndarray,
    val: np.ndarray,
    budget_s: float,
    args: argparse.Namespace,
    streams: int,
    changes: list[str],
) -> Loop:
    """The real training step (``Run.train_step``) on nanoGPT's split, with ``changes`` to
    ``ghostwrite train``'s recipe (``RECIPE_CHANGES``)."""
    cache = Path(tempfile.mkdtemp(prefix="ghostwrite-bench-"))
    recipe, ema_decay = parse_recipe(changes)
    cfg = TrainConfig(
        paths=[str(data_path)],
        out=cache / "model",
        preset="article",
        seed=args.seed,
        max_minutes=budget_s / 60 if budget_s > 0 else None,
        token_cache=cache,
        blas_threads=args.blas_threads,
        streams=streams,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        dropout=args.dropout,
        min_lr_ratio=args.min_lr_ratio,
        optimizer=args.optimizer,
    )
    cfg = dataclasses.replace(cfg, **recipe)
    run = Run(cfg, Reporter("plain", cfg.log_every, silent=True), StopFlag())
    shutil.rmtree(cache)
    run.data = TokenData(np.concatenate([train, val]), len(train), "tail", 0)  # nanoGPT's split

    def set_horizon(steps: int) -> None:
        run.state.horizon = steps

    step, scored = weight_average(run, ema_decay)
    return Loop(
        "+".join(["ghostwrite" + (f":{streams}" if streams else ""), *changes]),
        step,
        budget_ticker(budget_s, set_horizon),
        lambda: scored(lambda: mlx_val_loss(run.model, val, args.eval_windows)),
        lambda: scored(lambda: mlx_text_loss(run.model, val)),
        args.batch_size * run.model_cfg.ctx_len,
        lambda: learning_rate_at(cfg, run.base_lr, run.state.step, run.state.horizon),
        f"{run.streams} stream(s), {backend.blas_threads()} BLAS thread(s), "
        f"{run.model.num_params():,} parameters",
    )


def weight_average(
    run: Run, decay: float
) -> tuple[Callable[[], None], Callable[[Callable[[], float]], float]]:
    """The run's step, and a scorer that measures the model with an exponential moving average
    of its weights in place (the weights themselves when ``decay`` is 0). The average's decay
    ramps up as (1 + t) / (10 + t) so that early steps do not keep the initial weights in it."""
    model = run.model
    average = model.trainable_parameters()
    t = 0

    def step() -> None:
        nonlocal average, t
        run.train_step()
        if decay > 0:
            d = min(decay, (1 + t) / (10 + t))
            average = tree_map(
                lambda a, w: a * d + w * (1 - d), average, model.trainable_parameters()
            )
            mx.eval(average)
            t += 1

    def scored(measure: Callable[[], float]) -> float:
        if decay <= 0:
            return measure()
        weights = model.trainable_parameters()
        model.update(average)
        try:
            return measure()
        finally:
            model.update(weights)

    return step, scored


def article_loop(train: np.ndarray, val: np.ndarray, args: argparse.Namespace) -> Loop:
    """The article's loop: fixed shuffled chunks, plain AdamW, no compile."""
    backend.set_blas_threads(args.blas_threads or 1)
    cfg = PRESETS["article"]  # dropout 0.1, as in the article
    mx.random.seed(args.seed)
    model = GPT(cfg)
    optimizer = optim.AdamW(learning_rate=1e-3)
    loss_and_grad = nn.value_and_grad(model, cross_entropy)
    ctx = cfg.ctx_len
    starts = np.arange(0, len(train) - ctx - 1, ctx)
    rng = np.random.default_rng(args.seed)
    order: list[int] = []

    def step() -> None:
        nonlocal order
        if len(order) < ARTICLE_BATCH:
            order = list(rng.permutation(starts))
        batch, order = np.array(order[:ARTICLE_BATCH]), order[ARTICLE_BATCH:]
        x, y = windows(train, batch, ctx)
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        mx.eval(loss, model.parameters(), optimizer.state)

    return Loop(
        "article",
        step,
        lambda _step, _elapsed: None,
        lambda: mlx_val_loss(model, val, args.eval_windows),
        lambda: mlx_text_loss(model, val),
        ARTICLE_BATCH * ctx,
        lambda: 1e-3,
        "uncompiled, stock MLX ops",
    )


def torch_loop(
    train: np.ndarray, val: np.ndarray, budget_s: float, args: argparse.Namespace, threads: int
) -> Loop | None:
    """The same GPT, recipe and batches in PyTorch (eager), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch_gpt import TorchGPT  # bench/torch_gpt.py: imported only when torch is there

    torch.manual_seed(args.seed)
    # GPT-2's schedule with GPT-2's architecture, as ``ghostwrite+gpt2``.
    recipe = dataclasses.replace(RECIPE, min_lr_ratio=args.min_lr_ratio, schedule="cosine")
    cfg: GPTConfig = PRESETS["article"].with_changes(dropout=args.dropout)
    model = TorchGPT(cfg)
    named = list(model.named_parameters())
    # ghostwrite's grouping (training/optimizers.py, make_optimizer): Muon for the blocks' matrices.
    hidden = [p for n, p in named if args.optimizer == "muon" and is_hidden_matrix(n, p)]
    rest = [(n, p) for n, p in named if not any(p is h for h in hidden)]
    adamw = torch.optim.AdamW(
        [
            {"params": [p for _, p in rest if p.ndim >= 2], "weight_decay": RECIPE.weight_decay},
            {"params": [p for _, p in rest if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(RECIPE.beta1, RECIPE.beta2),
    )
    muon_scale = RECIPE.muon_learning_rate / RECIPE.scratch_learning_rate
    optimizers: list[tuple[torch.optim.Optimizer, float]] = [(adamw, 1.0)]
    if hidden:
        muon = torch.optim.Muon(hidden, momentum=RECIPE.muon_momentum, weight_decay=0.0)
        optimizers.append((muon, muon_scale))
    ctx = cfg.ctx_len
    state = {"step": 0, "horizon": None}

    def batch(data: np.ndarray, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(data[starts[:, None] + np.arange(ctx + 1)].astype(np.int64))
        return rows[:, :-1], rows[:, 1:]

    def step() -> None:
        if torch.get_num_threads() != threads:  # loops with other thread counts take turns
            torch.set_num_threads(threads)
        rng = np.random.default_rng(step_seed(args.seed, 0, state["step"], 0))
        x, y = batch(train, rng.integers(0, len(train) - ctx, args.batch_size))
        lr = learning_rate_at(recipe, args.lr, state["step"], state["horizon"])
        for optimizer, scale in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr * scale
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), RECIPE.grad_clip)
        for optimizer, _ in optimizers:
            optimizer.step()
        loss.item()
        state["step"] += 1

    def val_loss() -> float:
        starts = val_starts(val, ctx, args.eval_windows)
        model.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(starts), EVAL_BATCH):
                x, y = batch(val, starts[i : i + EVAL_BATCH])
                logits = model(x)
                loss = torch.nn.functional.cross_entropy(
                    logits.view(-1, logits.size(-1)), y.reshape(-1)
                )
                total += loss.item() * len(x)
        model.train()
        return total / len(starts)

    def text_loss() -> float:
        _, scored = scoring_windows(len(val), ctx)
        total = 0.0
        model.eval()
        with torch.no_grad():
            for i in range(0, len(scored), EVAL_BATCH):
                chunk = scored[i : i + EVAL_BATCH]
                x, y = batch(val, np.array([start for start, _ in chunk]))
                logits = model(x)
                losses = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), y, reduction="none"
                )
                firsts = [first for _, first in chunk]
                total += sum(float(row[f:].sum()) for row, f in zip(losses, firsts, strict=True))
        model.train()
        return total / (len(val) - 1)

    def set_horizon(steps: int) -> None:
        state["horizon"] = steps

    return Loop(
        f"torch:{threads}",
        step,
        budget_ticker(budget_s, set_horizon),
        val_loss,
        text_loss,
        args.batch_size * ctx,
        lambda: learning_rate_at(recipe, args.lr, state["step"], state["horizon"]),
        f"torch {torch.__version__}, {threads} thread(s), eager",
    )


def make_loop(
    name: str,
    args: argparse.Namespace,
    train: np.ndarray,
    val: np.ndarray,
    budget_s: float,
) -> Loop | None:
    base, *changes = name.split("+")
    kind, _, number = base.partition(":")
    if number and not number.isdigit():
        raise SystemExit(f"bad loop {name!r}: the number after ':' is streams or threads")
    if changes and kind != "ghostwrite":
        raise SystemExit(f"bad loop {name!r}: only the ghostwrite loop takes recipe changes")
    if kind == "ghostwrite":
        streams = int(number or args.streams)
        return ghostwrite_loop(args.data, train, val, budget_s, args, streams, changes)
    if kind == "article":
        return article_loop(train, val, args)
    if kind == "torch":
        return torch_loop(train, val, budget_s, args, int(number or args.torch_threads))
    raise SystemExit(f"unknown loop {name!r}")


def race(loops: list[Loop], budget_s: float, round_s: float, eval_every_s: float) -> list[dict]:
    """Each loop trains ``budget_s`` seconds of training time, the loops taking turns for
    ``round_s`` seconds, so all of them see the same background load. Every ``eval_every_s``
    seconds of a loop's training its clock stops and it is scored on the validation windows
    (not at step 0: the whole-text measure takes many seconds, and at random weights it says
    nothing)."""
    runs = [
        {"loop": loop, "elapsed": 0.0, "steps": 0, "next_eval": eval_every_s, "rounds": [],
         "cpu_rounds": [], "points": []}
        for loop in loops
    ]  # fmt: skip
    round_no = 0
    while any(r["elapsed"] < budget_s for r in runs):
        round_no += 1
        for r in runs:
            loop = r["loop"]
            round_time, round_cpu, round_steps = 0.0, 0.0, 0
            while r["elapsed"] < budget_s and (round_time < round_s or round_steps < 2):
                started, cpu_started = time.perf_counter(), time.process_time()
                loop.step()
                spent = time.perf_counter() - started
                round_cpu += time.process_time() - cpu_started
                # The first step builds the JIT kernels; a variant whose kernels are not yet in
                # MLX's cache would otherwise lose many seconds of its budget to the compiler.
                r["elapsed"] += spent if r["steps"] else 0.0
                r["steps"] += 1
                round_time += spent
                round_steps += 1
                loop.tick(r["steps"], r["elapsed"])
                if r["elapsed"] >= r["next_eval"] or r["elapsed"] >= budget_s:
                    r["points"].append(
                        {
                            "time_s": round(r["elapsed"], 2),
                            "steps": r["steps"],
                            "val_loss": loop.val_loss(),
                            "text_loss": loop.text_loss(),
                            "lr": loop.learning_rate(),
                        }
                    )
                    r["next_eval"] += eval_every_s
            r["this_round"] = loop.tokens_per_step * round_steps / round_time if round_steps else 0
            if round_no > 1 and round_steps:  # round 1 builds JIT kernels and warms up
                r["rounds"].append(r["this_round"])
                r["cpu_rounds"].append(loop.tokens_per_step * round_steps / round_cpu)
        cells = "  ".join(f"{r['loop'].name} {r['this_round']:6.0f}" for r in runs)
        print(f"  round {round_no}: {cells} tok/s" + (" (warm-up)" if round_no == 1 else ""))
    return [
        {
            "name": r["loop"].name,
            "note": r["loop"].note,
            "steps": r["steps"],
            "train_s": round(r["elapsed"], 2),
            "tokens_per_s": statistics.median(r["rounds"]) if r["rounds"] else math.nan,
            "round_tokens_per_s": r["rounds"],
            # Tokens per CPU-second (all threads): the work a token costs, which background
            # load does not change (unlike wall time), except for spinning threads.
            "tokens_per_cpu_s": statistics.median(r["cpu_rounds"]) if r["cpu_rounds"] else math.nan,
            "final_val_loss": r["points"][-1]["val_loss"],
            "final_text_loss": r["points"][-1]["text_loss"],
            "points": r["points"],
        }
        for r in runs
    ]


def print_speed(results: list[dict]) -> None:
    """Median tokens/s over rounds, and the median per-round ratio to the first torch loop."""
    print("\ntokens/s: median over rounds (min-max); ratio per round, median (min-max)")
    ref = next((r for r in results if r["name"].startswith("torch")), None)
    for r in results:
        rates = r["round_tokens_per_s"] or [math.nan]
        ratio = ""
        if ref is not None and r is not ref:
            per_round = [a / b for a, b in zip(rates, ref["round_tokens_per_s"], strict=False)]
            if per_round:
                ratio = (
                    f"  {statistics.median(per_round):.2f}x {ref['name']} "
                    f"({min(per_round):.2f}-{max(per_round):.2f})"
                )
        print(
            f"  {r['name']:13s} {r['tokens_per_s']:8.0f}  ({min(rates):.0f}-{max(rates):.0f})"
            f"{ratio}  per CPU-second {r['tokens_per_cpu_s']:.0f}  [{r['note']}]"
        )


def print_quality(results: list[dict]) -> None:
    print(
        "\nval loss (nats/char) after equal training time: over the whole split, each character "
        "with its context (text), and over fixed windows that start without context (windows)"
    )
    print(f"{'time':>8s}  " + "  ".join(f"{r['name'] + ' text/windows':>26s}" for r in results))
    rows = max(len(r["points"]) for r in results)
    for i in range(rows):
        cells = []
        for r in results:
            p = r["points"][i] if i < len(r["points"]) else None
            cells.append(f"{p['text_loss']:17.4f} {p['val_loss']:8.4f}" if p else " " * 26)
        times = [r["points"][i]["time_s"] for r in results if i < len(r["points"])]
        print(f"{times[0]:7.0f}s  " + "  ".join(cells))
    print("  steps:  " + "  ".join(f"{r['steps']:26d}" for r in results))
    print(f"(Kneser-Ney 6-gram, per character of the split: {KN6_NATS}; ln 2 nats = 1 bit)")


def plot(results: list[dict], path: Path, batch_size: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        xs = [p["time_s"] / 60 for p in r["points"]]
        text = ax.plot(xs, [p["text_loss"] for p in r["points"]], marker=".")
        ax.plot(
            xs,
            [p["val_loss"] for p in r["points"]],
            linestyle=":",
            color=text[0].get_color(),
            label=f"{r['name']}: windows starting without context",
        )
        text[0].set_label(f"{r['name']}: each character with its context")
    ax.axhline(KN6_NATS, color="gray", linestyle="--", label=f"Kneser-Ney 6-gram ({KN6_NATS})")
    ax.set_xlabel("training time (minutes, this machine)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title(f"tinyshakespeare, ctx 128, 3x128, batch {batch_size}")
    ax.set_ylim(top=min(3.0, max(p["val_loss"] for r in results for p in r["points"]) + 0.1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--loops", default="ghostwrite,torch", help="comma-separated")
    parser.add_argument("--minutes", type=float, default=1.0, help="training time per loop")
    parser.add_argument("--round-s", type=float, default=5.0, help="turn length")
    parser.add_argument("--eval-every-s", type=float, default=15.0)
    parser.add_argument("--eval-windows", type=int, default=512)
    parser.add_argument("--blas-threads", type=int, default=0, help="0: ghostwrite's default")
    parser.add_argument("--streams", type=int, default=0, help="0: ghostwrite's default")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    parser.add_argument("--lr", type=float, default=RECIPE.scratch_learning_rate)
    parser.add_argument("--dropout", type=float, default=RECIPE.dropout)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=RECIPE.optimizer)
    parser.add_argument("--min-lr-ratio", type=float, default=RECIPE.min_lr_ratio)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-train")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}")
    backend.enable_native_jit()

    train, val = load_split(args.data)
    budget_s = args.minutes * 60
    loops = []
    for name in args.loops.split(","):
        loop = make_loop(name, args, train, val, budget_s)
        if loop is None:
            print(f"{name}: skipped (torch is not installed: pip install -e '.[bench]')")
        else:
            loops.append(loop)
    print(
        f"{', '.join(loop.name for loop in loops)}: {args.minutes:g} min of training each, "
        f"taking turns every {args.round_s:g} s",
        flush=True,
    )
    results = race(loops, budget_s, args.round_s, args.eval_every_s)
    print_speed(results)
    print_quality(results)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"args": settings, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report))
    png = args.out / "loss_vs_time.png"
    drew = plot(results, png, args.batch_size)
    print(f"wrote {args.out / 'results.json'}" + (f" and {png}" if drew else ""))
    if not all(math.isfinite(r["final_text_loss"]) for r in results):
        raise SystemExit("loss diverged")


if __name__ == "__main__":
    main()
