"""Renders the parts of the docs that come from the parameter registry, so they cannot drift from it.

`python -m grid.docgen` rewrites the README's configuration table in place; a test checks it is current.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from grid import config

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- config-table:begin -->", "<!-- config-table:end -->"


def _default(p: dict) -> str:
    # The embedded broker's default path is per user; show it as the user would type it.
    text = str(p["default"]).replace(config.STATE_DIR, "$HOME/.local/state/grid")
    return f"`{text}`" if text else "(empty)"


def _rows() -> list[tuple[str, dict]]:
    """One row per parameter and default; roles that share both are listed together."""
    grouped: dict[tuple, tuple[list[str], dict]] = {}
    for p in config.export_registry()["parameters"]:
        key = (p["name"], _default(p), p["allowed"], p["help"])
        grouped.setdefault(key, ([], p))[0].append(p["role"])
    return [(", ".join(roles), p) for roles, p in grouped.values()]


def config_table() -> str:
    lines = ["| parameter | roles | default | allowed | env / flag | what it does |", "| --- | --- | --- | --- | --- | --- |"]
    for roles, p in _rows():
        cells = [f"`{p['name']}`", roles, _default(p), p["allowed"], f"`{p['env']}` `{p['flag']}`", p["help"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def render(readme: str) -> str:
    """The README text with its configuration table replaced by the registry's."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README has no {BEGIN} ... {END} section")
    return pattern.sub(lambda _: f"{BEGIN}\n{config_table()}\n{END}", readme)


def main() -> int:
    README.write_text(render(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
