"""Security properties: the TCP mode listens on loopback only unless
asked, and nothing that loads models or data can execute code (no pickle anywhere, numpy loads
with allow_pickle=False)."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from ghostwrite.server.client import encode
from ghostwrite.server.transport import FrameParser
from tests.helpers.network import free_port, listening_addresses

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "server", "training")


def test_tcp_mode_listens_on_loopback_only(tiny_model_dir):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ghostwrite.server", "--model", str(tiny_model_dir), "--tcp", port],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening_addresses(int(port)):
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)
        assert listening_addresses(int(port)) == ["0100007F"]  # 127.0.0.1, nothing else
        with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as connection:
            request = {"processId": None, "rootUri": None, "capabilities": {}}
            connection.sendall(
                encode({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": request})
            )
            parser = FrameParser()
            answers: list[dict] = []
            while not any(a.get("id") == 1 for a in answers):
                chunk = connection.recv(1 << 16)
                assert chunk, "the server closed the connection"
                answers += [json.loads(b) for b in parser.feed(chunk) if isinstance(b, bytes)]
            assert "capabilities" in next(a for a in answers if a.get("id") == 1)["result"]
            connection.sendall(encode({"jsonrpc": "2.0", "method": "exit"}))
        assert server.wait(timeout=30) == 1  # exit without shutdown
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_no_pickle_and_numpy_loads_refuse_pickles():
    problems = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    if any(
                        n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names
                    ):
                        problems.append(f"{where}: imports a pickle module")
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("np", "numpy")
                ):
                    allow = [k for k in node.keywords if k.arg == "allow_pickle"]
                    if not allow or not (
                        isinstance(allow[0].value, ast.Constant) and allow[0].value.value is False
                    ):
                        problems.append(f"{where}: np.load without allow_pickle=False")
    assert problems == []
