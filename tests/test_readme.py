"""The README's configuration reference is generated from the code and cannot drift."""

import re
from pathlib import Path

from ghostwrite.server.options import options_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_options_table_matches_the_server_options():
    readme = README.read_text(encoding="utf-8")
    table = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", readme, re.DOTALL)
    assert table is not None, "README has no options table"
    assert table.group(1) == options_markdown().strip() + "\n", (
        "README options table is stale: run python bench/update_readme.py"
    )
