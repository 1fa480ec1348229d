"""The OpenBLAS preload: on by default on Linux (with numpy's Fortran runtime where the system has
none), off with GHOSTWRITE_OPENBLAS=0, same results; nothing of it outside training."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROBE = """
import json
from ghostwrite.model import backend
backend.setup_mlx()
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
    assert fast["active"], "the fast BLAS did not load: MLX trains ~10x slower"
    np.testing.assert_allclose(fast["matmul"], stock["matmul"], atol=1e-4)
    np.testing.assert_allclose(fast["losses"], stock["losses"], rtol=1e-5)
    np.testing.assert_allclose(fast["wte"], stock["wte"], atol=1e-5)


JIT_PROBE = """
import json, os, sys
from ghostwrite.model import backend
import mlx.core as mx
native = backend.enable_native_jit()
x = mx.linspace(-4, 4, 4096)
y = mx.compile(lambda a: a * mx.sigmoid(1.702 * a))(x)
ref = x * (1 / (1 + mx.exp(-1.702 * x)))
print(json.dumps({"native": native, "tmpdir": os.environ.get("TMPDIR"),
                  "gxx": os.environ["PATH"].split(os.pathsep)[0],
                  "max_err": mx.abs(y - ref).max().item()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the wrapper is Linux-only")
def test_native_jit_builds_vectorized_kernels_in_its_own_cache(tmp_path):
    import shutil

    if shutil.which("g++") is None:
        pytest.skip("no g++: mx.compile runs uncompiled")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", JIT_PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    assert probe["native"] is True
    assert probe["max_err"] < 1e-5
    home = next(tmp_path.glob("ghostwrite/native-jit-*"))
    assert probe["gxx"] == str(home / "bin") and probe["tmpdir"] == str(home / "tmp")
    kernels = list((home / "tmp").glob("mlx/*/cpu/*Sigmoid*contiguous.so"))
    assert kernels, "mx.compile built nothing in the native cache"
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if shutil.which("objdump") and " avx " in cpu_flags:
        code = subprocess.run(
            ["objdump", "-d", str(kernels[0])], capture_output=True, text=True, check=True
        ).stdout
        assert "ymm" in code, "the fused sigmoid kernel did not vectorize"
        assert "simd3exp" not in code, "exp was called out of line (libmlx's scalar copy)"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF and numpy.libs are Linux's")
def test_soname_patch_renames_only_the_soname(tmp_path: Path) -> None:
    import numpy

    from ghostwrite.model.backend import set_soname

    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    source = next(iter(sorted(libs.glob("libgfortran-*.so.5*"))), None)
    if source is None:
        pytest.skip("this numpy carries no libgfortran")
    copy = tmp_path / "libgfortran.so.5"
    shutil.copyfile(source, copy)
    set_soname(copy, "libgfortran.so.5")
    before, after = source.read_bytes(), copy.read_bytes()
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed and changed[-1] - changed[0] < 64  # one short run of bytes: the name
    assert b"libgfortran.so.5\0" in after
    with pytest.raises(ValueError, match="longer"):
        set_soname(copy, "x" * 200)
    with pytest.raises(ValueError, match="ELF"):
        set_soname(write_text(tmp_path / "text.so", "not a library"), "libgfortran.so.5")


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "args",
    [["complete", "--help"], ["info"], ["complete", "--bogus"], ["serve", "--bogus"]],
)
def test_commands_that_do_not_train_never_touch_the_blas(args: list[str]) -> None:
    code = (
        "import sys; from ghostwrite.server.cli import main\n"
        "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
        "import ghostwrite.model.backend as b\n"
        "assert 'mlx.core' not in sys.modules and not b.openblas_active(), 'BLAS was set up'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert "BLAS" not in out.stderr and "BLAS" not in out.stdout
    assert "was set up" not in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
