"""Where a compiled training step's time goes on this CPU: phases, then op by op.

    python bench/profile_step.py [--repeat 10] [--blas-threads 1] [--streams 1]

Model and batch: the article's (ctx 128, n_emb 128, 4 heads, 3 layers, dropout 0.1, batch 64).
Phases: the compiled forward, forward + backward, and the whole step (+ gradient clipping and
AdamW), each timed alone, so backward = (forward + backward) - forward and so on. Ops: each op
of the step at the step's shapes, compiled alone (as ``mx.compile`` fuses it in the step),
its forward alone and its VJP alone (the backward plus whatever of the forward it needs: for a
matmul just the two gradient matmuls), next to the alternatives ghostwrite chose between.
"per step" is (forward + VJP) times how often the op occurs in a step (layers, dropouts): an
upper bound, since a VJP may recompute part of the forward. Medians of ``--repeat``.
``--ablate`` times the whole compiled step with each of ghostwrite's op choices reverted.

Native JIT flags are process-wide (and MLX caches kernels by name): compare them by running
this once as is and once with GHOSTWRITE_NATIVE_JIT=0.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

# isort: off
from ghostwrite.model import PRESETS, backend

backend.setup_mlx()  # before mlx.core: the fast BLAS
import mlx.core as mx

# isort: on
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from ghostwrite.model import gpt

BATCH = 64


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``fn`` (evaluated), after two warm-up calls."""
    for _ in range(2):
        mx.eval(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def interleaved(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median milliseconds of each run, the runs taking turns (they share the background
    load of a busy machine), after two warm-up calls each."""
    for run in runs.values():
        for _ in range(2):
            mx.eval(run())
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            mx.eval(run())
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def forward_backward(f: Callable[..., mx.array], *args: mx.array) -> Callable[[], object]:
    """The compiled VJP (fixed cotangent) w.r.t. the float arguments."""
    floats = [i for i, a in enumerate(args) if mx.issubdtype(a.dtype, mx.floating)]
    cotangent = mx.random.normal(f(*args).shape)
    mx.eval(cotangent)  # an unevaluated constant would be traced into the compiled function

    def vjp(*xs: mx.array) -> list[mx.array]:
        def on_floats(*fs: mx.array) -> mx.array:
            full = list(xs)
            for i, value in zip(floats, fs, strict=True):
                full[i] = value
            return f(*full)

        return mx.vjp(on_floats, [xs[i] for i in floats], [cotangent])[1]

    fn = mx.compile(vjp)
    return lambda: fn(*args)


def compiled(f: Callable[..., mx.array], *args: mx.array) -> Callable[[], object]:
    fn = mx.compile(f)
    return lambda: fn(*args)


def tanh_gelu(x: mx.array) -> mx.array:
    return 0.5 * x * (1.0 + mx.tanh(gpt.GELU_COEFF * (x + 0.044715 * x * x * x)))


def autograd_gelu(x: mx.array) -> mx.array:
    """ghostwrite's sigmoid-form GELU without its hand-written VJP."""
    return x * mx.sigmoid(gpt.GELU_SIGMOID_SCALE * (x + gpt.GELU_CUBIC * x * x * x))


def relu2(x: mx.array) -> mx.array:
    return mx.square(mx.maximum(x, 0.0))


def phases(repeat: int, streams: int) -> list[tuple[str, float]]:
    cfg = PRESETS["article"]
    mx.random.seed(0)
    model = gpt.GPT(cfg)
    optimizer = optim.AdamW(1e-3, weight_decay=0.1)
    optimizer.init(model.trainable_parameters())
    x = mx.random.randint(0, 256, (BATCH, cfg.ctx_len))
    y = mx.random.randint(0, 256, (BATCH, cfg.ctx_len))
    mx.eval(x, y, model.parameters(), optimizer.state)
    loss_and_grad = nn.value_and_grad(model, gpt.cross_entropy)
    state = [model.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=[mx.random.state])
    def forward(x: mx.array, y: mx.array) -> mx.array:
        return gpt.cross_entropy(model, x, y)

    @partial(mx.compile, inputs=state, outputs=[mx.random.state])
    def grads(x: mx.array, y: mx.array) -> tuple[mx.array, dict]:
        weights = model.trainable_parameters()
        out = loss_and_grad(model, x, y)
        model.update(weights)
        return out

    everything = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=everything, outputs=everything)
    def step(x: mx.array, y: mx.array) -> mx.array:
        loss, g = loss_and_grad(model, x, y)
        g, _ = optim.clip_grad_norm(g, 1.0)
        optimizer.update(model, g)
        return loss

    def run(fn: Callable[[mx.array, mx.array], object]) -> Callable[[], object]:
        if streams == 1:
            return lambda: (fn(x, y), model.state, optimizer.state)
        cpu = [mx.default_stream(mx.cpu)] + [mx.new_stream(mx.cpu) for _ in range(streams - 1)]
        shard = BATCH // streams

        def split() -> object:
            outs = []
            for i, s in enumerate(cpu):
                with mx.stream(s):
                    outs.append(fn(x[i * shard : (i + 1) * shard], y[i * shard : (i + 1) * shard]))
            return outs

        return split

    runs = {"forward (loss)": run(forward), "forward + backward": run(grads)}
    if streams == 1:
        runs["whole step (+ clip + AdamW)"] = run(step)
    return list(interleaved(runs, repeat).items())


def stock_attention(self: gpt.CausalSelfAttention, x: mx.array) -> mx.array:
    """MLX's stock attention: its fused-attention op (ordinary ops on CPU)."""
    B, T, C = x.shape
    D = C // self.n_heads
    q, k, v = self.qkv(x).reshape(B, T, 3, self.n_heads, D).transpose(2, 0, 3, 1, 4)
    y = mx.fast.scaled_dot_product_attention(q, k, v, scale=D**-0.5, mask="causal")
    return self.dropout(self.proj(y.transpose(0, 2, 1, 3).reshape(B, T, C)))


REVERSIONS: dict[str, list[tuple[object, str, object]]] = {
    "GELU via tanh": [(gpt, "gelu", tanh_gelu)],
    "GELU: autograd VJP": [(gpt, "gelu", autograd_gelu)],
    "softmax: mx.softmax": [(gpt, "softmax", lambda s: mx.softmax(s, axis=-1))],
    "attention: mx.fast.sdpa": [(gpt.CausalSelfAttention, "__call__", stock_attention)],
    "dropout: nn.Dropout": [(gpt, "Dropout", nn.Dropout)],
    "cross-entropy: nn.losses": [
        (gpt, "mean_cross_entropy", lambda a, t: nn.losses.cross_entropy(a, t, reduction="mean"))
    ],
    "embedding: gather": [(gpt.GPT, "embed", lambda self, t: self.wte(t))],
    "layer norm: mx.fast": [(gpt, "LayerNorm", nn.LayerNorm)],
}
REVERSIONS["all of the above (the model before)"] = [
    p
    for name, patches in REVERSIONS.items()
    if "sdpa" not in name and "autograd" not in name
    for p in patches
] + REVERSIONS["attention: mx.fast.sdpa"]


@contextmanager
def reverted(patches: list[tuple[object, str, object]]) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def ablations(repeat: int) -> list[tuple[str, float]]:
    """Whole compiled step (one stream) with one of ghostwrite's op choices reverted at a time;
    the variants take turns every repetition, so they see the same background load."""
    cfg = PRESETS["article"]
    x = mx.random.randint(0, 256, (BATCH, cfg.ctx_len))
    y = mx.random.randint(0, 256, (BATCH, cfg.ctx_len))
    mx.eval(x, y)
    steps = {}
    for name, patches in [("ghostwrite's choices", []), *REVERSIONS.items()]:
        with reverted(patches):  # building and tracing see the reverted ops
            mx.random.seed(0)
            model = gpt.GPT(cfg)
            optimizer = optim.AdamW(1e-3, weight_decay=0.1)
            optimizer.init(model.trainable_parameters())
            loss_and_grad = nn.value_and_grad(model, gpt.cross_entropy)
            everything = [model.state, optimizer.state, mx.random.state]

            def step(
                x: mx.array, y: mx.array, model=model, optimizer=optimizer, lg=loss_and_grad
            ) -> mx.array:
                loss, g = lg(model, x, y)
                g, _ = optim.clip_grad_norm(g, 1.0)
                optimizer.update(model, g)
                return loss

            compiled_step = mx.compile(step, inputs=everything, outputs=everything)
            run = partial(
                lambda f, m, o: (f(x, y), m.state, o.state), compiled_step, model, optimizer
            )
            mx.eval(run())  # trace while the reversion is in place
        steps[name] = run
    return list(interleaved(steps, repeat).items())


def ops(repeat: int) -> list[tuple[str, int, float, float]]:
    """(name, times per step, forward ms, VJP ms) at the article's shapes."""
    cfg = PRESETS["article"]
    B, T, C, H, V, L = BATCH, cfg.ctx_len, cfg.n_emb, cfg.n_heads, cfg.vocab_size, cfg.n_layers
    D = C // H
    mx.random.seed(0)
    normal = mx.random.normal
    x = normal((B * T, C))
    hidden = normal((B * T, 4 * C))
    scores = normal((B, H, T, T))
    logits = normal((B * T, V))
    tokens = mx.random.randint(0, V, (B, T))
    targets = tokens.reshape(-1)
    q, k, v = (normal((B, H, T, D)) for _ in range(3))
    w = {
        n: normal(s) * 0.02
        for n, s in [
            ("qkv", (3 * C, C)),
            ("fc", (4 * C, C)),
            ("proj", (C, 4 * C)),
            ("out", (C, C)),
            ("head", (V, C)),
            ("wte", (V, C)),
        ]
    }
    ln, our_ln = nn.LayerNorm(C), gpt.LayerNorm(C)
    mask = gpt.causal_mask(T)
    # Constants captured unevaluated would be recomputed inside every compiled call.
    mx.eval(
        x, hidden, scores, logits, tokens, q, k, v, w, ln.parameters(), our_ln.parameters(), mask
    )
    rows: list[tuple[str, int, Callable[..., mx.array], tuple[mx.array, ...]]] = [
        ("matmul qkv (8192x128 @ 128x384)", L, lambda a, b: a @ b.T, (x, w["qkv"])),
        ("matmul attn out (128 -> 128)", L, lambda a, b: a @ b.T, (x, w["out"])),
        ("matmul mlp fc (128 -> 512)", L, lambda a, b: a @ b.T, (x, w["fc"])),
        ("matmul mlp proj (512 -> 128)", L, lambda a, b: a @ b.T, (hidden, w["proj"])),
        ("matmul lm head (128 -> 256)", 1, lambda a, b: a @ b.T, (x, w["head"])),
        ("attention q @ k^T (256 x 128x32x128)", L, lambda a, b: a @ b.swapaxes(-1, -2), (q, k)),
        ("attention p @ v", L, lambda a, b: a @ b, (scores, v)),
        ("scores + causal mask", L, lambda s: s + mask, (scores,)),
        ("softmax: mx.softmax (prebuilt kernel)", L, lambda s: mx.softmax(s, axis=-1), (scores,)),
        ("softmax: fused ops + hand VJP (used)", L, gpt.softmax, (scores,)),
        (
            "sdpa: mx.fast (causal)",
            L,
            lambda a, b, c: mx.fast.scaled_dot_product_attention(
                a, b, c, scale=D**-0.5, mask="causal"
            ),
            (q, k, v),
        ),
        (
            "sdpa: ghostwrite's ops (used)",
            L,
            lambda a, b, c: gpt.softmax((a * D**-0.5) @ b.swapaxes(-1, -2) + mask) @ c,
            (q, k, v),
        ),
        ("GELU tanh form (8192x512)", L, tanh_gelu, (hidden,)),
        ("GELU sigmoid form, autograd VJP", L, autograd_gelu, (hidden,)),
        ("GELU sigmoid form, hand VJP (used)", L, gpt.gelu, (hidden,)),
        ("relu^2 (for comparison)", L, relu2, (hidden,)),
        ("layer norm: mx.fast (8192x128)", 2 * L + 1, ln, (x,)),
        ("layer norm: hand VJP (used)", 2 * L + 1, our_ln, (x,)),
        ("bias add (8192x512)", L, lambda a, b: a + b, (hidden, hidden[0])),
        ("residual add (8192x128)", 2 * L, lambda a, b: a + b, (x, x)),
        (
            "cross-entropy: nn.losses",
            1,
            lambda a: nn.losses.cross_entropy(a, targets, reduction="mean"),
            (logits,),
        ),
        (
            "cross-entropy: hand VJP (used)",
            1,
            lambda a: gpt.mean_cross_entropy(a, targets),
            (logits,),
        ),
        ("embedding: gather", 1, lambda e: e[tokens], (w["wte"],)),
        (
            "embedding: one-hot matmul (used)",
            1,
            lambda e: (tokens[..., None] == mx.arange(V)).astype(mx.float32) @ e,
            (w["wte"],),
        ),
    ]
    results = []
    for name, count, f, args in rows:
        fwd = timed(compiled(f, *args), repeat)
        vjp = timed(forward_backward(f, *args), repeat)
        results.append((name, count, fwd, vjp))

    # Dropout draws masks from the global generator: compile with its state.
    state = [mx.random.state]
    for name, layer in [
        ("dropout: nn.Dropout", nn.Dropout(0.1)),
        ("dropout: 16-bit masks (used)", gpt.Dropout(0.1)),
    ]:
        fwd = mx.compile(lambda a, layer=layer: layer(a), inputs=state, outputs=state)
        results.append((name, 2 * L + 1, timed(lambda fwd=fwd: fwd(x), repeat), math.nan))

    model = gpt.GPT(cfg)
    params = model.trainable_parameters()
    grads = params
    mx.eval(params)
    opt = optim.AdamW(1e-3, weight_decay=0.1)
    opt.init(params)

    @partial(mx.compile, inputs=[model.state, opt.state], outputs=[model.state, opt.state])
    def adamw(g: dict) -> None:
        g, _ = optim.clip_grad_norm(g, 1.0)
        opt.update(model, g)

    ms = timed(lambda: (adamw(grads), model.state, opt.state)[1:], repeat)
    results.append((f"clip + AdamW ({len(tree_flatten(params))} tensors)", 1, ms, math.nan))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--streams", type=int, default=1, help="split the phases' batch")
    parser.add_argument("--skip-ops", action="store_true")
    parser.add_argument("--ablate", action="store_true", help="also revert op choices one by one")
    args = parser.parse_args()
    native = backend.enable_native_jit()
    backend.set_blas_threads(args.blas_threads)
    print(
        f"OpenBLAS {'on' if backend.openblas_active() else 'off'}, "
        f"{args.blas_threads} BLAS thread(s), native JIT {'on' if native else 'off'}, "
        f"{args.streams} stream(s), batch {BATCH}x128"
    )
    tokens = BATCH * PRESETS["article"].ctx_len
    for name, ms in phases(args.repeat, args.streams):
        print(f"  {name:34s} {ms:8.1f} ms  ({tokens / ms * 1e3:8.0f} tok/s)")
    if args.ablate:
        print("\n  whole compiled step, one op choice reverted (one stream)")
        rows = ablations(args.repeat)
        base = rows[0][1]
        for name, ms in rows:
            print(f"  {name:40s} {ms:8.1f} ms  {ms / base:5.2f}x  ({tokens / ms * 1e3:6.0f} tok/s)")
    if args.skip_ops or args.streams > 1:
        return
    print(f"\n  {'op (one stream)':44s} {'n':>6s} {'fwd ms':>8s} {'vjp ms':>8s} {'per step':>9s}")
    for name, count, fwd, vjp in ops(args.repeat):
        per_step = count * (fwd if math.isnan(vjp) else fwd + vjp)
        vjp_text = "" if math.isnan(vjp) else f"{vjp:8.2f}"
        print(f"  {name:44s} {count:6d} {fwd:8.2f} {vjp_text:>8s} {per_step:8.1f}")


if __name__ == "__main__":
    main()
