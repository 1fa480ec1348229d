"""The README's configuration reference is generated from the code and cannot drift."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_options_table_matches_the_server_options():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "bench/update_readme.py")
    update_readme = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_readme)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- options:start -->" in readme
    assert update_readme.with_options_table(readme) == readme, (
        "README options table is stale: run python bench/update_readme.py"
    )
