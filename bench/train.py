"""Training speed and quality on this machine: ghostwrite's loop against the article's, one run.

    python bench/train.py [--minutes 10] [--eval-every-s 30] [--out runs/bench-train]

Reference config (the article's): ctx 128, n_emb 128, 4 heads, 3 layers, dropout 0.1, batch 64,
AdamW lr 1e-3, on ../shared/data/tinyshakespeare.txt with nanoGPT's split (first 90% train,
last 10% validation). Same model class for both loops, so only the training loop differs:

  ghostwrite  ``ghostwrite.training``'s step: random windows, warm-up + cosine decay over the
              time budget, gradient clipping, weight decay on matrices only, compiled step.
  article     the article's loop: the training text cut into fixed chunks of 128, shuffled each
              epoch, AdamW(1e-3) with MLX's default weight decay, uncompiled.

Each loop trains for ``--minutes`` (one after the other, so they never share the CPU); every
``--eval-every-s`` seconds of training the clock stops and both are scored on the same fixed
validation windows. Prints tokens/s and validation loss (nats/char) against training time,
writes results.json and, with matplotlib (the ``bench`` extra), loss_vs_time.png.
For reference: a Kneser-Ney 6-gram scores 1.5385 on this split, nanoGPT's char model 1.47.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# isort: off
from ghostwrite.model import PRESETS, backend  # before mlx.core: OpenBLAS must load first
import mlx.core as mx

# isort: on
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from ghostwrite.model.gpt import GPT, cross_entropy
from ghostwrite.training.corpus import TokenData
from ghostwrite.training.progress import Reporter
from ghostwrite.training.train import (
    BUDGET_MARGIN,
    ESTIMATE_AFTER_STEPS,
    Run,
    StopFlag,
    TrainConfig,
    windows,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
KN6_NATS = 1.5385  # Kneser-Ney 6-gram on nanoGPT's split
BATCH = 64


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    n = int(0.9 * len(data))
    return data[:n], data[n:]


def val_loss(model: GPT, val: np.ndarray, windows_n: int) -> float:
    """Mean loss on fixed, evenly spaced validation windows (identical for both loops)."""
    ctx = model.cfg.ctx_len
    starts = np.linspace(0, len(val) - ctx - 1, windows_n).round().astype(np.int64)
    model.eval()
    total = 0.0
    for i in range(0, windows_n, BATCH):
        x, y = windows(val, starts[i : i + BATCH], ctx)
        total += cross_entropy(model, x, y).item() * len(x)
    model.train()
    return total / windows_n


def ghostwrite_loop(
    data_path: Path, train: np.ndarray, val: np.ndarray, budget_s: float, seed: int, threads: int
) -> tuple[GPT, Callable[[], None], Callable[[float], None]]:
    """The real training step (``Run.train_step``) on nanoGPT's split."""
    cache = Path(tempfile.mkdtemp(prefix="ghostwrite-bench-"))
    cfg = TrainConfig(
        paths=[str(data_path)],
        out=cache / "model",
        preset="article",
        seed=seed,
        max_minutes=budget_s / 60,
        token_cache=cache,
        blas_threads=threads,
    )
    run = Run(cfg, Reporter("plain", cfg.log_every, silent=True), StopFlag())
    shutil.rmtree(cache)
    run.data = TokenData(np.concatenate([train, val]), len(train), "tail", 0)  # nanoGPT's split
    timing: dict[str, float] = {}

    def step() -> None:
        run.train_step()

    def tick(elapsed: float) -> None:
        # Run.loop's time budget -> step count, so the cosine schedule spans the budget.
        s = run.state
        if s.horizon is not None:
            return
        if "from_step" not in timing:
            timing.update(from_step=s.step, from_time=elapsed)
        elif s.step - timing["from_step"] >= ESTIMATE_AFTER_STEPS:
            per_step = (elapsed - timing["from_time"]) / (s.step - timing["from_step"])
            s.horizon = s.step + max(1, int((budget_s - elapsed) * BUDGET_MARGIN / per_step))

    return run.model, step, tick


def article_loop(
    train: np.ndarray, seed: int, threads: int
) -> tuple[GPT, Callable[[], None], Callable[[float], None]]:
    """The article's loop: fixed shuffled chunks, plain AdamW, no compile."""
    backend.set_blas_threads(threads)
    cfg = PRESETS["article"]
    mx.random.seed(seed)
    model = GPT(cfg)
    optimizer = optim.AdamW(learning_rate=1e-3)
    loss_and_grad = nn.value_and_grad(model, cross_entropy)
    ctx = cfg.ctx_len
    starts = np.arange(0, len(train) - ctx - 1, ctx)
    rng = np.random.default_rng(seed)
    order: list[int] = []

    def step() -> None:
        nonlocal order
        if len(order) < BATCH:
            order = list(rng.permutation(starts))
        batch, order = np.array(order[:BATCH]), order[BATCH:]
        x, y = windows(train, batch, ctx)
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        mx.eval(loss, model.parameters(), optimizer.state)

    return model, step, lambda _elapsed: None


def measure(
    name: str,
    model: GPT,
    step: Callable[[], None],
    tick: Callable[[float], None],
    val: np.ndarray,
    budget_s: float,
    eval_every_s: float,
    eval_windows: int,
) -> dict:
    """Train for ``budget_s`` seconds of training time, scoring every ``eval_every_s``."""
    tokens_per_step = BATCH * model.cfg.ctx_len
    points = [{"time_s": 0.0, "steps": 0, "val_loss": val_loss(model, val, eval_windows)}]
    elapsed, steps, next_eval = 0.0, 0, eval_every_s
    first_step_s = None
    while elapsed < budget_s:
        started = time.perf_counter()
        step()
        spent = time.perf_counter() - started
        first_step_s = spent if first_step_s is None else first_step_s
        elapsed += spent
        steps += 1
        tick(elapsed)
        if elapsed >= next_eval or elapsed >= budget_s:
            loss = val_loss(model, val, eval_windows)
            points.append({"time_s": round(elapsed, 2), "steps": steps, "val_loss": loss})
            print(f"  {name:10s} {elapsed:7.1f}s  step {steps:6d}  val {loss:.4f}", flush=True)
            next_eval += eval_every_s
    steady = (elapsed - (first_step_s or 0)) / max(1, steps - 1)
    return {
        "name": name,
        "steps": steps,
        "train_s": round(elapsed, 2),
        "first_step_s": round(first_step_s or 0, 2),
        "tokens_per_s": tokens_per_step * steps / elapsed,
        "steady_tokens_per_s": tokens_per_step / steady,
        "final_val_loss": points[-1]["val_loss"],
        "best_val_loss": min(p["val_loss"] for p in points),
        "points": points,
    }


def print_table(results: list[dict]) -> None:
    print("\nval loss (nats/char) vs training time")
    names = [r["name"] for r in results]
    print(f"{'time':>8s}  " + "  ".join(f"{n:>12s}" for n in names))
    rows = max(len(r["points"]) for r in results)
    for i in range(rows):
        cells = []
        for r in results:
            p = r["points"][i] if i < len(r["points"]) else None
            cells.append(f"{p['val_loss']:12.4f}" if p else " " * 12)
        times = [r["points"][i]["time_s"] for r in results if i < len(r["points"])]
        print(f"{times[0]:7.0f}s  " + "  ".join(cells))
    print()
    print(
        f"{'loop':12s} {'steps':>7s} {'tok/s':>9s} {'steady':>9s} {'1st step':>9s} {'best val':>9s}"
    )
    for r in results:
        print(
            f"{r['name']:12s} {r['steps']:9d} {r['tokens_per_s']:9.0f} "
            f"{r['steady_tokens_per_s']:9.0f} {r['first_step_s']:8.1f}s {r['best_val_loss']:9.4f}"
        )
    print(f"(Kneser-Ney 6-gram: {KN6_NATS}; ln 2 nats = 1 bit)")


def plot(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        xs = [p["time_s"] / 60 for p in r["points"][1:]]
        ax.plot(xs, [p["val_loss"] for p in r["points"][1:]], marker=".", label=r["name"])
    ax.axhline(KN6_NATS, color="gray", linestyle="--", label=f"Kneser-Ney 6-gram ({KN6_NATS})")
    ax.set_xlabel("training time (minutes, this machine)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title("tinyshakespeare, ctx 128, 3x128, batch 64")
    ax.set_ylim(top=min(3.0, max(p["val_loss"] for r in results for p in r["points"][1:]) + 0.1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per loop")
    parser.add_argument("--eval-every-s", type=float, default=30.0)
    parser.add_argument("--eval-windows", type=int, default=512)
    parser.add_argument("--loops", default="ghostwrite,article", help="comma-separated")
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-train")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data at {args.data}")

    train, val = load_split(args.data)
    budget_s = args.minutes * 60
    results = []
    for name in args.loops.split(","):
        print(f"{name}: training {args.minutes:g} min", flush=True)
        if name == "ghostwrite":
            model, step, tick = ghostwrite_loop(
                args.data, train, val, budget_s, args.seed, args.blas_threads
            )
        elif name == "article":
            model, step, tick = article_loop(train, args.seed, args.blas_threads)
        else:
            raise SystemExit(f"unknown loop {name!r}")
        results.append(
            measure(name, model, step, tick, val, budget_s, args.eval_every_s, args.eval_windows)
        )

    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (args.out / "results.json").write_text(json.dumps({"args": settings, "results": results}))
    png = args.out / "loss_vs_time.png"
    print(f"wrote {args.out / 'results.json'}" + (f" and {png}" if plot(results, png) else ""))
    if not math.isfinite(results[-1]["final_val_loss"]):
        raise SystemExit("loss diverged")


if __name__ == "__main__":
    main()
