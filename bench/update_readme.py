"""Regenerate the README's configuration reference from ``server/options.py``.

    python bench/update_readme.py

The table sits between ``<!-- options:start -->`` and ``<!-- options:end -->``;
tests/test_readme.py fails when it differs from what this script would write.
"""

from __future__ import annotations

import re
from pathlib import Path

from ghostwrite.server.options import options_markdown

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = re.compile(r"(<!-- options:start -->\n).*?(<!-- options:end -->)", re.DOTALL)


def with_options_table(readme: str) -> str:
    table = options_markdown().strip() + "\n"
    return SECTION.sub(lambda m: m.group(1) + table + m.group(2), readme, count=1)


def main() -> None:
    README.write_text(with_options_table(README.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    main()
