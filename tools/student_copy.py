#!/usr/bin/env python
"""Write student copies of the chapter notebooks: every exercise solution replaced by an empty answer cell.

    python tools/student_copy.py OUT_DIR                          # every notebook chapter of book/_toc.yml
    python tools/student_copy.py OUT_DIR notebooks/06_*.ipynb     # only these
    python tools/student_copy.py OUT_DIR --overwrite              # replace copies written before

A solution cell is a code cell whose id ends in ``-sol<N>`` (``tools/hide_solutions.py`` writes them, hidden by
the ``hide-cell`` tag, ``jupyter.source_hidden`` and Colab's ``#@title`` form; ``tests/test_exercises.py`` checks
the scheme). In the copy it becomes an empty, visible code cell whose only line is
``# Your solution to exercise N`` (id ``<prefix>-ans<N>``, no tags, no outputs). Every other cell is kept exactly
as it is. The repository's notebooks stay the answer key.

Nothing is written unless every input can be read and every output may be written: an input that is missing or
is not a notebook, two inputs with the same file name, an OUT_DIR inside ``notebooks/`` (it would mix the copies
with the answer key) or one that is a file, and an existing copy without ``--overwrite`` are refused with one line
on stderr and exit status 1. Each copy is written to a temporary file in OUT_DIR and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTION_ID = re.compile(r"^(?P<prefix>.*)-sol(?P<n>\d+)$")
ANSWER_LINE = "# Your solution to exercise {n}"


class Refused(Exception):
    """A reason to write nothing; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit status 1, like every other refusal (argparse's default is 2)
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def toc_notebooks() -> list:
    """The notebook chapters of book/_toc.yml, in book order."""
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"))
    out = []
    for part in toc.get("parts", []):
        for ch in part.get("chapters", []):
            path = ROOT / f"{ch['file']}.ipynb"
            if path.exists():
                out.append(path)
    return out


def is_solution(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and SOLUTION_ID.match(str(cell.get("id", ""))) is not None


def answer_cell(cell: dict) -> dict:
    """The empty answer cell that replaces solution ``cell``."""
    m = SOLUTION_ID.match(cell["id"])
    return {"cell_type": "code", "execution_count": None, "id": f"{m.group('prefix')}-ans{m.group('n')}",
            "metadata": {}, "outputs": [], "source": [ANSWER_LINE.format(n=int(m.group("n")))]}


def student_notebook(nb: dict) -> tuple:
    """``(copy, number of solutions replaced)``; ``nb`` is a notebook as parsed JSON and is not changed."""
    cells, n = [], 0
    for cell in nb["cells"]:
        if is_solution(cell):
            cells.append(answer_cell(cell))
            n += 1
        else:
            cells.append(cell)
    copy = dict(nb, cells=cells)
    ids = [c.get("id") for c in cells if c.get("id")]
    if len(ids) != len(set(ids)):
        raise Refused("the answer cells' ids would collide with ids already in the notebook")
    return copy, n


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def read_notebook(path: Path) -> dict:
    if not path.exists():
        raise Refused(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".ipynb":
        raise Refused(f"{path}: not a notebook (.ipynb file)")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise Refused(f"{path}: cannot read it as a notebook ({str(err).splitlines()[0]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise Refused(f"{path}: not an nbformat 4 notebook")
    return nb


def plan(out_dir: Path, inputs: list, overwrite: bool) -> list:
    """``[(input, output, copy, replaced)]`` or Refused; writes nothing."""
    out_dir = out_dir.resolve()
    if _within(out_dir, NOTEBOOKS.resolve()):
        raise Refused(f"OUT_DIR {out_dir} is inside {NOTEBOOKS}: the copies must not mix with the answer key; "
                      "choose a folder outside notebooks/")
    if out_dir.exists() and not out_dir.is_dir():
        raise Refused(f"OUT_DIR {out_dir} exists and is not a folder")
    if not inputs:
        raise Refused("no notebooks to copy (book/_toc.yml lists none and none were given)")
    jobs, names = [], {}
    for given in inputs:
        if not Path(given).exists():
            raise Refused(f"{given}: no such file")
        src = Path(given).resolve()
        nb = read_notebook(src)
        if src.name in names:
            raise Refused(f"{names[src.name]} and {src} have the same file name; copy them into different folders")
        names[src.name] = src
        dst = out_dir / src.name
        if dst == src:
            raise Refused(f"{dst} would overwrite its own input")
        if dst.exists() and not overwrite:
            raise Refused(f"{dst} exists; pass --overwrite to replace it")
        if dst.exists() and dst.is_dir():
            raise Refused(f"{dst} exists and is a folder")
        copy, n = student_notebook(nb)
        jobs.append((src, dst, copy, n))
    return jobs


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps(nb: dict) -> str:
    """The layout nbformat writes (indent 1, sorted keys, UTF-8), so a copy diffs cleanly against its source."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = _Parser(prog="student_copy.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the copies (created; not inside notebooks/)")
    parser.add_argument("notebooks", nargs="*", help="notebooks to copy (default: every notebook chapter of the toc)")
    parser.add_argument("--overwrite", action="store_true", help="replace copies that already exist in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        jobs = plan(Path(args.out_dir), args.notebooks or toc_notebooks(), args.overwrite)
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        for src, dst, copy, n in jobs:
            write_atomic(dst, dumps(copy))
            print(f"{dst}: {n} solution cell{'s' if n != 1 else ''} replaced")
    except Refused as err:
        print(f"student_copy.py: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"student_copy.py: error: {err.filename or ''}: {err.strerror or err}".replace(": : ", ": "),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
