"""Keep README's support matrix generated from provisioning/matrix.yaml.

`python -m tests.readme_matrix --write` rewrites the section; tests/test_readme.py checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gimme.matrix import load_matrix, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- support-matrix:begin -->", "<!-- support-matrix:end -->"


def expected(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown_table(load_matrix()).strip()}\n{END}{tail}"


if __name__ == "__main__":
    text = README.read_text()
    if "--write" in sys.argv:
        README.write_text(expected(text))
    else:
        sys.exit(
            0
            if expected(text) == text
            else "README support matrix is stale: run python -m tests.readme_matrix --write"
        )
