"""The OpenBLAS preload: on by default on Linux, off with GHOSTWRITE_OPENBLAS=0, same results."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

PROBE = """
import json
import ghostwrite.model
from ghostwrite.model import backend
import mlx.core as mx, mlx.nn as nn, mlx.optimizers as optim
from ghostwrite.model import PRESETS
from ghostwrite.model.gpt import GPT, cross_entropy
mx.random.seed(0)
a = mx.random.normal((64, 96)); b = mx.random.normal((96, 48))
model = GPT(PRESETS["tiny"])
opt = optim.AdamW(learning_rate=1e-3)
x = mx.random.randint(0, 256, (4, 64)); y = mx.random.randint(0, 256, (4, 64))
step = nn.value_and_grad(model, cross_entropy)
losses = []
for _ in range(3):
    loss, grads = step(model, x, y)
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)
    losses.append(loss.item())
print(json.dumps({"active": backend.openblas_active(), "matmul": (a @ b).tolist(),
                  "losses": losses, "wte": model.wte.weight[:4].tolist()}))
"""


def run_probe(openblas: str) -> dict:
    env = {**os.environ, "GHOSTWRITE_OPENBLAS": openblas}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is Linux-only")
def test_openblas_results_match_the_stock_blas():
    fast, stock = run_probe("1"), run_probe("0")
    assert stock["active"] is False
    if not fast["active"]:
        pytest.skip("OpenBLAS could not load here (libgfortran5 missing?)")
    np.testing.assert_allclose(fast["matmul"], stock["matmul"], atol=1e-4)
    np.testing.assert_allclose(fast["losses"], stock["losses"], rtol=1e-5)
    np.testing.assert_allclose(fast["wte"], stock["wte"], atol=1e-5)
