"""Learning from the writer: a round fine-tunes, measures both models on the newest files and
swaps only a better one; killed at any point it leaves the model whole; the server runs rounds
when the editor is idle, pauses them while the writer types, and reports them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, client_capabilities

from ghostwrite.model import files
from ghostwrite.server.background import BackgroundJob
from ghostwrite.training.corpus import scan
from ghostwrite.training.harness import PROSE, make_corpus, run_faulty_learning, run_learn
from ghostwrite.training.learn import (
    Measured,
    held_out_text,
    judge,
    learn_round,
    newest_files,
)

QUICK = ["--steps", "3"]


def workspace(root: Path, notes: int = 4) -> Path:
    """Notes written one after another: the last is the newest."""
    make_corpus(root, notes)
    for i, path in enumerate(sorted(root.iterdir())):
        stamp = time.time() - 1000 + 100 * i
        os.utime(path, (stamp, stamp))
    return root


def notes_and_personal_model(tmp_path: Path, model_dir: Path) -> tuple[Path, Path]:
    """A notes folder, and a copy of ``model_dir`` as the personal model a round replaces."""
    out = tmp_path / "personal"
    shutil.copytree(model_dir, out)
    return workspace(tmp_path / "notes"), out


def weights_of(directory: Path) -> dict[str, np.ndarray]:
    return files.load_model(directory).weights


def same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_newest_files_are_held_out_oldest_first(tmp_path: Path) -> None:
    corpus = scan([workspace(tmp_path / "notes", 4)])
    held = newest_files(corpus.files, share=0.3)
    names = [f.path.name for f in held]
    assert names == ["note3.txt", "note2.txt"]  # newest first, until 30% of the text
    text = held_out_text(corpus.files, held)
    assert text.startswith("Note 2.") and "Note 3." in text  # ends with the newest
    assert newest_files(corpus.files, share=1.0)[-1].path.name == "note1.txt"  # never all
    # One file: its tail, as training's own split holds it out.
    [single] = [f for f in corpus.files if f.path.name == "note3.txt"]
    assert newest_files([single]) == []
    whole = (tmp_path / "notes" / "note3.txt").read_text() + "\n"
    tail = held_out_text([single], [])
    assert whole.endswith(tail) and len(tail) == round(0.1 * len(whole.encode()))


@pytest.mark.parametrize(
    ("after", "swapped"),
    [
        (Measured(1.9, 0.31, 0.4), True),
        (Measured(1.9, 0.30, 0.4), False),  # savings only equal
        (Measured(2.0, 0.35, 0.4), False),  # loss only equal
        (Measured(2.1, 0.25, 0.5), False),
    ],
)
def test_judge_swaps_only_when_both_improve(after: Measured, swapped: bool) -> None:
    verdict = judge(Measured(2.0, 0.30, 0.4), after)
    assert verdict.swapped is swapped
    assert ("learned" if swapped else "kept the current model") in verdict.message


@pytest.mark.parametrize("better", [True, False])
def test_a_round_replaces_the_model_only_with_a_better_one(
    tmp_path: Path, tiny_model_dir: Path, better: bool
) -> None:
    notes, out = notes_and_personal_model(tmp_path, tiny_model_dir)
    old = weights_of(out)
    scores = iter([Measured(2.0, 0.2, 0.3), Measured(1.5 if better else 2.5, 0.3, 0.3)])
    verdict = learn_round(
        [str(notes)],
        out,
        out,
        steps=3,
        progress="plain",
        token_cache=tmp_path / "cache",
        measure=lambda model, text: next(scores),
    )
    assert verdict.swapped is better
    new = weights_of(out)  # loads: whole either way
    assert same_weights(new, old) is not better
    assert not list(tmp_path.glob("personal.checkpoint")) and not list(
        tmp_path.glob(".learning-*/")
    )


@pytest.mark.parametrize("notes_files", [4, 1])
def test_the_learn_command_reports_a_verdict_with_its_figures(
    tmp_path: Path, tiny_model_dir: Path, notes_files: int
) -> None:
    notes = workspace(tmp_path / "notes", notes_files)
    if notes_files == 1:  # long enough that its tail makes a test
        (notes / "note0.txt").write_text(PROSE * 12)
    out = tmp_path / "personal"
    done = run_learn(notes, "--model", tiny_model_dir, "--out", out, *QUICK, "--progress", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    final = events[-1]
    assert final["event"] == "done" and isinstance(final["swapped"], bool)
    for figures in (final["before"], final["after"]):
        assert 0 < figures["bits_per_char"] < 8 and 0 <= figures["savings"] < 1
    assert [e["event"] for e in events].count("evaluate") == 1
    # A better model lands at --out; a worse one leaves nothing there.
    assert (out / files.META_FILE).exists() is final["swapped"]


def test_the_learn_command_refuses_what_it_cannot_check(tmp_path: Path, tiny_model_dir) -> None:
    short = tmp_path / "short"
    short.mkdir()
    (short / "notes.txt").write_text(PROSE[:600])
    refused = run_learn(short, "--model", tiny_model_dir, "--out", tmp_path / "out", *QUICK)
    assert refused.returncode == 1
    assert "learning needs at least" in refused.stderr
    assert "Traceback" not in refused.stderr
    notes = workspace(tmp_path / "notes")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    refused = run_learn(notes, "--model", tiny_model_dir, "--out", foreign, *QUICK)
    assert refused.returncode == 1 and "photos" in refused.stderr
    assert (foreign / "holiday.jpg").read_bytes() == b"\xff\xd8"


@pytest.mark.parametrize("fault", ["save", "swap"])
def test_killing_a_round_leaves_the_served_model_whole(
    tmp_path: Path, tiny_model_dir: Path, fault: str
) -> None:
    notes, out = notes_and_personal_model(tmp_path, tiny_model_dir)
    old = weights_of(out)
    killed = run_faulty_learning(fault, notes, "--model", out, "--out", out, *QUICK)
    assert killed.returncode == -signal.SIGKILL
    after_kill = weights_of(out)  # loads: old or new, never half of one
    if fault == "save":
        assert same_weights(after_kill, old)
    # The next round cleans what the killed one left next to the model.
    done = run_learn(notes, "--model", out, "--out", out, *QUICK)
    assert done.returncode == 0, done.stderr
    weights_of(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".learning-")] == [
        ".learning-lock"
    ]


def test_a_killed_round_at_any_moment_leaves_a_model_that_loads(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    notes, out = notes_and_personal_model(tmp_path, tiny_model_dir)
    command = [sys.executable, "-m", "ghostwrite.server.cli", "learn", str(notes)]
    command += ["--model", str(out), "--out", str(out), *QUICK, "--progress", "json"]
    for delay in (0.5, 1.5, 3.0, 5.0):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        weights_of(out)


def test_a_round_stops_when_its_parent_goes(tmp_path: Path, tiny_model_dir: Path) -> None:
    notes, out = notes_and_personal_model(tmp_path, tiny_model_dir)
    command = [sys.executable, "-m", "ghostwrite.server.cli", "learn", str(notes), "--background"]
    command += ["--model", str(out), "--out", str(out), "--steps", "100000", "--progress", "json"]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None and process.stdout is not None
    assert json.loads(process.stdout.readline())["event"] == "start"
    process.stdin.close()  # what the server's death does to it
    assert process.wait(timeout=60) in (143, -signal.SIGTERM)
    weights_of(out)


def test_a_paused_job_stops_running_until_resumed() -> None:
    import asyncio

    def state(pid: int) -> str:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    async def scenario() -> None:
        job = BackgroundJob("sleeper", "t", None, lambda: False, lambda m, k: None)  # type: ignore[arg-type]
        started = await job.start([sys.executable, "-c", "import time; time.sleep(30)"])
        pid = started["pid"]
        job.pause()
        await asyncio.sleep(0.2)
        assert state(pid) == "T" and job.state()["paused"]
        job.resume()
        await asyncio.sleep(0.2)
        assert state(pid) in "SR" and not job.state()["paused"]
        job.pause()
        job.stop()  # a paused job is continued, so that it can act on the interrupt
        assert job.process is not None
        await asyncio.wait_for(job.process.wait(), 10)

    asyncio.run(scenario())


async def wait_until(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_the_server_learns_when_idle_pauses_while_typing_and_reports(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    notes = workspace(tmp_path / "notes")
    data = tmp_path / "data"
    personal = data / "ghostwrite" / "model"
    shutil.copytree(tiny_model_dir, personal)
    env = {k: v for k, v in os.environ.items() if k != "GHOSTWRITE_MODEL"}
    env |= {"XDG_DATA_HOME": str(data), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "ghostwrite.server", "--learn"], server_env=env
    )
    client = await config.start()
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={"learnIdleSeconds": 1, "learnSteps": 40},
                workspace_folders=[types.WorkspaceFolder(notes.as_uri(), notes.name)],
            )
        )

        async def learning() -> dict:
            result = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="ghostwrite.status")
            )
            return result["learning"]

        first = await learning()
        assert first["enabled"] and not first["running"]
        assert first["waiting"] == "nothing new written since the last round"
        uri = (notes / "note3.txt").as_uri()
        text = (notes / "note3.txt").read_text()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "plaintext", 1, text))
        )
        end = types.Position(0, 0)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=2, uri=uri),
                [types.TextDocumentContentChangePartial(types.Range(end, end), "More. ")],
            )
        )

        async def running() -> bool:
            return (await learning())["running"]

        await wait_until(running)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=3, uri=uri),
                [types.TextDocumentContentChangePartial(types.Range(end, end), "Again. ")],
            )
        )
        assert (await learning())["paused"]  # typing pauses the round

        async def finished() -> bool:
            state = await learning()
            return not state["running"] and state["result"] is not None

        await wait_until(finished)
        state = await learning()
        assert state["rounds"] == 1 and state["result"].startswith("done: "), state
        verdict = state["verdict"]
        assert isinstance(verdict["swapped"], bool) and verdict["message"]
        assert verdict["before"]["bits_per_char"] > 0 and verdict["after"]["bits_per_char"] > 0
        reports = client.progress_reports["ghostwrite-learning-1"]
        assert reports[0].title == "ghostwrite: learning from your writing"
        assert isinstance(reports[-1], types.WorkDoneProgressEnd)
        weights_of(personal)  # whole, whichever model it is now
        await client.shutdown_session()
    finally:
        if client._server is not None and client._server.returncode is None:
            client._server.kill()
        await client.stop()
