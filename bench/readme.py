"""Writes a benchmark's table into README.md between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.

Every results table in the README is produced by a benchmark run, never typed by hand.
"""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def update_section(name: str, text: str) -> bool:
    """Replaces the marked section `name` of README.md with `text`; False if the markers are missing."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    content = README.read_text()
    if begin not in content or end not in content:
        return False
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}")
    return True
