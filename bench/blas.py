"""Training speed by BLAS set-up, side by side: MLX's reference BLAS, the OpenBLAS with numpy's
Fortran runtime (what ``pip install`` alone gives), and, where the system has
``libgfortran.so.5``, the same OpenBLAS bound to the system's copy.

    python bench/blas.py --steps 30 --rounds 3
    python bench/blas.py --skip-reference   # the fast set-ups only (reference: ~10x slower)
    python bench/blas.py --check     # CI: exit 1 if training would run on the slow BLAS

Each round runs every variant once, in turn (the order alternates between rounds), as a real
``ghostwrite train`` on the article's recipe (ctx 128, 128 wide, 4 heads, 3 layers, batch 64,
AdamW, lr 1e-3, dropout 0.1) over tinyshakespeare, and reads tokens/s from its JSON progress (the
median of its step reports after the first, which includes compilation). The system variant
preloads the system's libgfortran (``LD_PRELOAD``): the loader then binds the OpenBLAS to it
instead of numpy's copy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
ARTICLE_RECIPE = [
    "--preset", "article", "--batch-size", "64", "--optimizer", "adamw",
    "--lr", "1e-3", "--dropout", "0.1",
]  # fmt: skip
# Far below OpenBLAS (90-180 GFLOP/s on the 2-core machine) and far above the reference BLAS (~5).
MATMUL_FLOOR_GFLOPS = 25.0

PROBE = """
import json, time
from ghostwrite.model import backend
warning = backend.setup_mlx()
import mlx.core as mx
a = mx.random.normal((512, 512)); mx.eval(a)
best = float("inf")
for _ in range(5):
    start = time.perf_counter(); mx.eval(a @ a); best = min(best, time.perf_counter() - start)
print(json.dumps({"warning": warning, "runtime": backend.fortran_runtime(),
                  "gflops": 2 * 512**3 / best / 1e9}))
"""


def system_fortran() -> str | None:
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in listing.splitlines():
        if "libgfortran.so.5 " in line and "=>" in line:
            return line.split("=>")[1].strip()
    return None


def variants() -> dict[str, dict[str, str]]:
    found = {
        "reference BLAS": {"GHOSTWRITE_OPENBLAS": "0"},
        "OpenBLAS + numpy's libgfortran": {},
    }
    system = system_fortran()
    if system:
        found["OpenBLAS + system libgfortran (LD_PRELOAD)"] = {"LD_PRELOAD": system}
    return found


def probe(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)


def train_rate(env: dict[str, str], steps: int, corpus: Path) -> tuple[float, str]:
    """Median tokens/s of a short ``ghostwrite train`` run, and its first stderr line."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "ghostwrite.training", str(corpus), *ARTICLE_RECIPE,
            "--max-steps", str(steps), "--log-every", "10", "--eval-every", str(steps),
            "--progress", "json", "--out", f"{tmp}/model", "--token-cache", f"{tmp}/tokens",
        ]  # fmt: skip
        out = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, timeout=3600
        )
    if out.returncode != 0:
        raise SystemExit(f"training failed: {out.stderr.strip().splitlines()[-1:]}")
    rates = [
        event["tokens_per_s"]
        for event in map(json.loads, out.stdout.splitlines())
        if event["event"] == "step" and event["step"] > 10 and event["tokens_per_s"]
    ]
    first = (out.stderr.strip().splitlines() or [""])[0]
    return statistics.median(rates), first


def check() -> int:
    result = probe({})
    if result["warning"]:
        print(f"blas check: {result['warning']}", file=sys.stderr)
        return 1
    if result["gflops"] < MATMUL_FLOOR_GFLOPS:
        print(
            f"blas check: matmul {result['gflops']:.1f} GFLOP/s, below the floor of "
            f"{MATMUL_FLOOR_GFLOPS:g}: MLX is not using the OpenBLAS",
            file=sys.stderr,
        )
        return 1
    print(f"blas check: OpenBLAS active ({result['runtime']}), {result['gflops']:.0f} GFLOP/s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--check", action="store_true", help="CI: fail on the slow BLAS")
    parser.add_argument(
        "--skip-reference", action="store_true", help="train only with the fast set-ups"
    )
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("the BLAS set-up is Linux-only")
        return 0
    if args.check:
        return check()
    found = variants()
    if args.skip_reference:
        del found["reference BLAS"]
    rates: dict[str, list[float]] = {name: [] for name in found}
    notes = {name: probe(env) for name, env in found.items()}
    for round_index in range(args.rounds):
        # Alternate the order, so that neither variant always runs first after a change of load.
        order = list(found.items())
        for name, env in order if round_index % 2 == 0 else reversed(order):
            rate, first_line = train_rate(env, args.steps, args.corpus)
            rates[name].append(rate)
            notes[name]["first_line"] = first_line
    fast = statistics.median(rates["OpenBLAS + numpy's libgfortran"])
    print(f"{args.rounds} rounds of {args.steps} steps, article recipe, {args.corpus.name}\n")
    print("| BLAS | matmul GFLOP/s | tokens/s (median) | per round | vs numpy's runtime |")
    print("|---|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v / 1000:.1f}k" for v in values)
        print(
            f"| {name} | {notes[name]['gflops']:.0f} | {median:,.0f} | {rounds} | "
            f"{median / fast:.2f}x |"
        )
    warned = [name for name, note in notes.items() if "warning" in note["first_line"]]
    print(f"\ntraining's first line warns about the BLAS: {', '.join(warned) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
