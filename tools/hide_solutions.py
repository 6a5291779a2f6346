#!/usr/bin/env python
"""Turn the dropdown exercise solutions of chapter notebooks into hidden, executed solution cells.

    python tools/hide_solutions.py notebooks/06_channel_strip_console.ipynb [...]
    python tools/hide_solutions.py --check notebooks/*.ipynb          # dry run: parse, write nothing
    python tools/hide_solutions.py --levels 1=warm-up,2=core,3=challenge notebooks/06_*.ipynb

Before: every exercise of a notebook's "## Exercises" section is a numbered item of a markdown cell,
and its solution is a following markdown cell holding a MyST dropdown::

    ````{admonition} Solution
    :class: dropdown
    ```python
    ...code...
    ```
    explanation prose
    ````

After: each solution is ONE code cell right after its exercise's markdown cell (a markdown cell with
several exercises is split into one cell per exercise), with

- the id ``<prefix>-sol<N>`` (``<prefix>`` from the notebook's cell ids, e.g. ``nb06``; N the exercise
  number) and the metadata of ``SOLUTION_METADATA``: hidden in the built book (``hide-cell``), in
  JupyterLab / Notebook 7 (``jupyter.source_hidden``) and in Colab (``cellView: form`` + ``#@title``);
- the source: ``#@title Solution to exercise N``, the import of ``Markdown, display``, the code of the
  solution's python blocks, then its prose as ``display(Markdown(r\"\"\"...\"\"\"))`` (rendered as MyST
  by the book, so math and citations work);
- no outputs.

It also puts the one line ``LEVELS_LINE`` under the "## Exercises" heading. Grading is a judgement and
stays by hand, but ``--levels N=level,...`` writes the levels into the exercises' titles
(``1. **Title** (warm-up).``). Numbers in the explanation that the code computes should then be turned
into f-strings by hand.

The conversion is idempotent: an already converted notebook is left byte-for-byte unchanged. A cell it
cannot parse is refused with one line ``path: cell <id>: <reason>`` on stderr and exit status 1, and then
no file is written.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

import nbformat

SOLUTION_METADATA = {"tags": ["hide-cell"], "jupyter": {"source_hidden": True, "outputs_hidden": True},
                     "cellView": "form"}
LEVELS = ("warm-up", "core", "challenge")
LEVELS_LINE = ("Levels: **warm-up** (minutes, one idea), **core** (the chapter's main skill), **challenge** "
               "(open, longer). Each solution is a hidden cell under its exercise: run it, or show its code.")
TITLE = "#@title Solution to exercise {n}"
IMPORT = "from IPython.display import Markdown, display"

EXERCISES_RE = re.compile(r"^## Exercises[ \t]*$", re.M)
HEADING_RE = re.compile(r"^#{1,2} ", re.M)
ITEM_RE = re.compile(r"^(?:\*\*)?(\d+)\.(?:\*\*)?\s")
LEVEL_RE = re.compile(r" ?\((?:warm-up|core|challenge)\)")
FENCE_RE = re.compile(r"^(`{3,}|~{3,})\s*(\S*)")
PYTHON_INFO = {"python", "py", "python3", "ipython", "ipython3", "{code-cell}"}
SOLUTION_OPEN = "````{admonition} Solution"


class Refused(Exception):
    """A cell the converter cannot parse; the message is one line."""


def is_solution_markdown(cell) -> bool:
    """A markdown cell holding a dropdown admonition titled "Solution" (other dropdowns, e.g. a derivation, are prose)."""
    return (cell.cell_type == "markdown" and ":class: dropdown" in cell.source
            and re.search(r"^`{3,}\{admonition\}\s*Solution", cell.source, re.M) is not None)


def is_solution_code(cell) -> bool:
    return cell.cell_type == "code" and re.search(r"-sol\d+$", cell.get("id", "")) is not None \
        and cell.source.startswith("#@title")


def id_prefix(nb, path: Path) -> str:
    """The prefix shared by the notebook's cell ids (``nb06-12`` -> ``nb06``), else ``nb`` + file number."""
    found = collections.Counter(m.group(1) for c in nb.cells
                                if (m := re.match(r"^([A-Za-z]+\d+)-", c.get("id", ""))))
    if found:
        return found.most_common(1)[0][0]
    digits = re.match(r"^(\d+)", path.name)
    return f"nb{digits.group(1) if digits else path.stem}"


def split_items(text: str) -> tuple[str, list[tuple[int, str]]]:
    """Split markdown into the text before the first numbered item and the items (number, text)."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if ITEM_RE.match(line)]
    if not starts:
        return text, []
    prelude = "\n".join(lines[:starts[0]])
    items = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(lines)
        items.append((int(ITEM_RE.match(lines[s]).group(1)), "\n".join(lines[s:e]).rstrip("\n")))
    return prelude, items


def parse_solution(cell) -> tuple[str, str]:
    """The (code, prose) of a dropdown solution cell; raises Refused on anything else."""
    lines = cell.source.rstrip().split("\n")
    if lines[0].rstrip() != SOLUTION_OPEN:
        raise Refused(f"a dropdown cell that does not start with '{SOLUTION_OPEN}'")
    if lines[-1].rstrip() != "````":
        raise Refused("the solution admonition is not closed by a '````' line")
    body = lines[1:-1]
    options = 0
    while options < len(body) and body[options].startswith(":"):
        options += 1
    if ":class: dropdown" not in [o.strip() for o in body[:options]]:
        raise Refused("':class: dropdown' is not an option line right after the admonition's first line")
    body = body[options:]
    code, prose = [], []
    i = 0
    while i < len(body):
        m = FENCE_RE.match(body[i])
        if not m:
            prose.append(body[i])
            i += 1
            continue
        fence, info = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(body) and not (body[j].startswith(fence[0] * len(fence))
                                     and body[j].strip() == body[j].strip()[0] * len(body[j].strip())):
            j += 1
        if j == len(body):
            raise Refused(f"the code block opened by '{body[i].strip()}' is never closed")
        if info in PYTHON_INFO:
            block = [line for line in body[i + 1:j] if not line.startswith(":")] if info == "{code-cell}" \
                else body[i + 1:j]
            code.append("\n".join(block).strip("\n"))
        else:
            prose.extend(body[i:j + 1])
        i = j + 1
    code_text = "\n\n".join(c for c in code if c)
    prose_text = re.sub(r"\n{3,}", "\n\n", "\n".join(prose)).strip()
    if not code_text and not prose_text:
        raise Refused("the solution is empty")
    if '"""' in prose_text:
        raise Refused("the explanation contains '\"\"\"', which cannot go into r\"\"\"...\"\"\"")
    if "#@title" in code_text:
        raise Refused("the solution code already contains a '#@title' line")
    return code_text, prose_text


def solution_source(n: int, code: str, prose: str) -> str:
    parts = [f"{TITLE.format(n=n)}\n{IMPORT}"]
    if code:
        parts.append(code)
    if prose:
        parts.append(f'display(Markdown(r"""\n{prose}\n"""))')
    return "\n\n".join(parts)


def set_level(item: str, level: str) -> str:
    """Write ``level`` into an exercise item's first line (``1. **Title** (level).``), replacing any level."""
    first, _, rest = item.partition("\n")
    first = LEVEL_RE.sub("", first, count=1)
    tag = f"({level})"
    if m := re.match(r"^(\d+\. \*\*)(.+?)(\.?)\*\*(\.?)", first):  # 1. **Title.** or 1. **Title**.
        dot = "." if (m.group(3) or m.group(4)) else ""
        first = f"{m.group(1)}{m.group(2)}** {tag}{dot}{first[m.end():]}"
    else:  # 1. text  or  **1.** text
        m = ITEM_RE.match(first)
        first = f"{first[:m.end()]}{tag} {first[m.end():]}"
    return first + ("\n" + rest if rest else "")


def convert(nb, path: Path, levels: dict[int, str] | None = None):
    """Convert ``nb`` in place; returns it. Raises Refused with a one-line reason."""
    prefix = id_prefix(nb, path)
    cells = nb.cells
    start = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and EXERCISES_RE.search(c.source)),
                 None)
    if start is None:
        raise Refused("no markdown cell with a '## Exercises' heading")
    end = len(cells)
    for i in range(start + 1, len(cells)):
        c = cells[i]
        if c.cell_type == "markdown" and not is_solution_markdown(c) and HEADING_RE.search(c.source):
            end = i
            break
    for c in cells[:start] + cells[end:]:
        if is_solution_markdown(c):
            raise Refused(f"cell {c.get('id')}: a dropdown solution outside the '## Exercises' section")
    ids = [c.get("id") for c in cells]
    new_section = []
    seen_numbers = set()
    i = start
    while i < end:
        cell = cells[i]
        cid = cell.get("id")
        if cell.cell_type != "markdown" or is_solution_markdown(cell):
            raise Refused(f"cell {cid}: a {'solution' if is_solution_markdown(cell) or is_solution_code(cell) else cell.cell_type} "
                          "cell that follows no exercise (or more solutions than exercises before it)")
        text = cell.source
        head = ""
        if i == start:  # only what follows the heading holds exercises
            m = EXERCISES_RE.search(text)
            head, text = text[:m.end()], text[m.end():]
        prelude, items = split_items(text)
        if i == start and "Levels:" not in prelude:
            prelude = f"\n\n{LEVELS_LINE}" + (prelude if prelude.strip() else "\n")
        j = i + 1
        while j < end and (is_solution_markdown(cells[j]) or is_solution_code(cells[j])):
            j += 1
        sols = cells[i + 1:j]
        if len(sols) != len(items):
            raise Refused(f"cell {cid}: {len(items)} exercise(s) followed by {len(sols)} solution cell(s)")
        for n, _ in items:
            if n in seen_numbers:
                raise Refused(f"cell {cid}: exercise number {n} appears twice")
            seen_numbers.add(n)
        if levels:
            items = [(n, set_level(t, levels[n]) if n in levels else t) for n, t in items]
        for k, ((n, item), sol) in enumerate(zip(items, sols)):
            if k == 0:
                md = cell
                md.source = (head + prelude.rstrip("\n") + "\n\n" + item) if (head or prelude.strip()) else item
                if not items:
                    md.source = head + prelude
            else:
                md = nbformat.v4.new_markdown_cell(item, id=f"{prefix}-ex{n}")
                if md.id in ids:
                    raise Refused(f"cell {cid}: the new exercise cell id {md.id} is already taken")
            new_section.append(md)
            if is_solution_code(sol):
                new_section.append(sol)
                continue
            try:
                code, prose = parse_solution(sol)
            except Refused as e:
                raise Refused(f"cell {sol.get('id')}: {e}") from None
            sid = f"{prefix}-sol{n}"
            if sid in ids and sid != sol.get("id"):
                raise Refused(f"cell {sol.get('id')}: the solution id {sid} is already taken")
            new_section.append(nbformat.v4.new_code_cell(solution_source(n, code, prose), id=sid,
                                                         metadata=dict(SOLUTION_METADATA,
                                                                       jupyter=dict(SOLUTION_METADATA["jupyter"]),
                                                                       tags=list(SOLUTION_METADATA["tags"]))))
        if not items:
            cell.source = head + prelude
            new_section.append(cell)
        i = j
    if levels and set(levels) - seen_numbers:
        raise Refused(f"--levels names exercise(s) {sorted(set(levels) - seen_numbers)} that the notebook lacks")
    nb.cells = cells[:start] + new_section + cells[end:]
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="parse and report, write nothing")
    ap.add_argument("--levels", help="N=level,... for ONE notebook, level one of " + ", ".join(LEVELS))
    args = ap.parse_args(argv)
    levels = None
    if args.levels:
        if len(args.notebooks) != 1:
            print("hide_solutions: --levels applies to one notebook at a time", file=sys.stderr)
            return 2
        levels = {}
        for part in args.levels.split(","):
            n, _, level = part.partition("=")
            if not n.strip().isdigit() or level.strip() not in LEVELS:
                print(f"hide_solutions: bad --levels entry {part!r} (want N=warm-up|core|challenge)", file=sys.stderr)
                return 2
            levels[int(n)] = level.strip()
    results, failed = [], False
    for path in args.notebooks:
        try:
            before = path.read_text(encoding="utf-8")
            nb = nbformat.reads(before, as_version=4)
            convert(nb, path, levels)
            nbformat.validate(nb)
            after = nbformat.writes(nb) + "\n"
            if after.rstrip("\n") == before.rstrip("\n"):
                after = before
        except Refused as e:
            print(f"{path}: {e}", file=sys.stderr)
            failed = True
            continue
        except Exception as e:  # unreadable or invalid notebook: still one line
            print(f"{path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
            failed = True
            continue
        n_sol = sum(is_solution_code(c) for c in nb.cells)
        results.append((path, before, after, n_sol))
    if failed:
        return 1
    for path, before, after, n_sol in results:
        state = "unchanged" if after == before else ("would change" if args.check else "converted")
        if after != before and not args.check:
            path.write_text(after, encoding="utf-8")
        print(f"{path}: {state} ({n_sol} solution cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
