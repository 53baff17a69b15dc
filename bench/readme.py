"""Writes a benchmark's table into README.md between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.

Every results table in the README is produced by a benchmark run, never typed by hand. As a script,
`python bench/readme.py SECTION FILE` writes a table a run saved elsewhere (e.g. on a GPU machine).
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


if __name__ == "__main__":
    # python bench/readme.py NAME FILE: FILE's text (e.g. a table gpu-check brought back) into section NAME.
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python bench/readme.py SECTION FILE   (e.g. bench-gpu-train out/bench-gpu-train.md)")
    if not update_section(sys.argv[1], Path(sys.argv[2]).read_text()):
        sys.exit(f"README.md has no {sys.argv[1]} markers")
    print(f"README.md: {sys.argv[1]} written from {sys.argv[2]}")
