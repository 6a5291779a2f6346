#!/usr/bin/env python
"""Copy the book's figures into one folder for lecture slides, named by the chapter they come from.

    python tools/export_figures.py OUT_DIR              # refuses files already in OUT_DIR
    python tools/export_figures.py OUT_DIR --overwrite

What it copies:

- the vector figures ``book/images/*.svg`` (drawn by ``book/figures/make_figures.py``) and the other images
  of ``book/images/`` (screenshots such as the listening-test pages), as ``<chapter>_<name>``, e.g.
  ``1.6_channel_strip.svg``. The chapter is the first page of ``book/_toc.yml`` that names the file (the
  ``# N.M Title`` heading of that page gives N.M); a figure that no page shows yet takes the page that
  ``tests/test_figures.py`` assigns it (``FIGURE_PAGES``); one with neither is skipped, with a warning.
- the plots of an executed book build, if there is one: for every chapter page of ``_build/html`` (``make
  book``) and of the single-page builds ``_build/_page/<page>/html`` (``jupyter-book build notebooks/X.ipynb``),
  the PNG images it shows (myst-nb stores cell outputs as ``_images/<sha256>.png``, so the page says which
  chapter a file belongs to), in page order, as ``<chapter>_<notebook>_fig<k>.png``. Without a build only the
  book/images files are copied, and the script says so.

It also writes ``index.md``: one table row per file (file, chapter, title of the chapter, where it came from).
Exit status 1 with one line on stderr on error (OUT_DIR inside the repository's book/ or notebooks/ folders,
files already there without ``--overwrite``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "book" / "images"
BUILD = ROOT / "_build"
IMAGE_SUFFIXES = (".svg", ".png", ".jpg", ".jpeg", ".gif")


class Refused(Exception):
    """A reason to write nothing; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def page_text(path: Path) -> str:
    """The text of a toc page (a notebook's cell sources joined, or a markdown file)."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", []))
    return path.read_text(encoding="utf-8")


def chapters() -> list:
    """``[(docname, number, title, path)]`` for every page of the toc, in book order.

    ``number`` is the "N.M" of the page's first heading ("# 1.6 The channel strip ..."), else the position in the
    toc ("0.k" for the welcome part, "A" for back matter pages without a number)."""
    import yaml

    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"))
    entries = [(toc["root"], None, 0)]
    for part in toc.get("parts", []):
        m = re.match(r"Part (\d+)", part.get("caption", ""))
        for k, ch in enumerate(part.get("chapters", []), start=1):
            entries.append((ch["file"], m.group(1) if m else None, k))
    out = []
    for doc, part, k in entries:
        path = next((ROOT / f"{doc}{ext}" for ext in (".ipynb", ".md") if (ROOT / f"{doc}{ext}").exists()), None)
        if path is None:
            continue
        text = page_text(path)
        head = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), Path(doc).name)
        m = re.match(r"(\d+\.\d+)\s+(.*)", head)
        if m:
            number, title = m.group(1), m.group(2)
        elif part is not None:
            number, title = f"{part}.{k}", head
        else:
            number, title = ("A" if doc.startswith("notebooks/") else f"0.{k}"), head
            title = re.sub(r"^Appendix:\s*", "", title) if number == "A" else title
        out.append((doc, number, title, path))
    return out


def assigned_pages() -> dict:
    """``{figure file name: page path}`` from ``FIGURE_PAGES`` in tests/test_figures.py (read as text)."""
    path = ROOT / "tests" / "test_figures.py"
    if not path.exists():
        return {}
    m = re.search(r"FIGURE_PAGES\s*=\s*\{(.*?)\}", path.read_text(encoding="utf-8"), re.S)
    return dict(re.findall(r'"([^"]+)"\s*:\s*"([^"]+)"', m.group(1))) if m else {}


def figure_chapter(name: str, pages: list, assigned: dict):
    """``(number, title, how)`` of the page that shows ``name``, or None."""
    for doc, number, title, path in pages:
        if number.startswith("0."):  # the welcome pages (this guide among them) talk about figures, not show them
            continue
        if re.search(r"(^|[/(\"'\s])" + re.escape(name) + r"\b", page_text(path)):
            return number, title, f"shown in {path.relative_to(ROOT)}"
    page = assigned.get(name)
    if page:
        for doc, number, title, path in pages:
            if str(path.relative_to(ROOT)) == page:
                return number, title, f"assigned to {page} (tests/test_figures.py), not shown there yet"
    return None


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs).get("src") or ""
            if src.lower().endswith(".png") and "_images/" in src:
                self.srcs.append(src)


def build_roots() -> list:
    """``[(html folder, {docname: html file})]`` of the builds present: the book, then single-page builds."""
    roots = []
    if (BUILD / "html").is_dir():
        roots.append((BUILD / "html", None))
    for page in sorted((BUILD / "_page").glob("*/html")) if (BUILD / "_page").is_dir() else []:
        roots.append((page, page.parent.name))
    return roots


def build_pngs(pages: list) -> list:
    """``[(number, title, doc, k, source file)]`` of the PNG plots of every executed chapter page found."""
    found, seen = [], set()
    for html_root, single in build_roots():
        for doc, number, title, path in pages:
            name = Path(doc).name
            candidates = [html_root / f"{doc}.html"]
            if single is not None:  # a single-page build names its page after the source file
                candidates += [html_root / f"{name}.html"]
                if not (single == name or single.endswith("-" + name)):
                    continue
            html_file = next((c for c in candidates if c.is_file()), None)
            if html_file is None or doc in seen:
                continue
            parser = _Images()
            parser.feed(html_file.read_text(encoding="utf-8", errors="replace"))
            files = []
            for src in parser.srcs:
                f = (html_file.parent / src.split("#")[0].split("?")[0]).resolve()
                if f.is_file() and f not in files:
                    files.append(f)
            if files:
                seen.add(doc)
                found += [(number, title, doc, k, f) for k, f in enumerate(files, start=1)]
    return found


def _rel(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(dst: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, dst)


def plan() -> tuple:
    """``(rows, notes)``: rows ``(out name, number, title, source path, origin)``; writes nothing."""
    pages = chapters()
    assigned = assigned_pages()
    rows, notes = [], []
    images = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if IMAGES.is_dir() else []
    for img in images:
        where = figure_chapter(img.name, pages, assigned)
        if where is None:
            notes.append(f"warning: {img.relative_to(ROOT)} is shown by no page of the toc; skipped")
            continue
        number, title, how = where
        kind = "vector figure" if img.suffix.lower() == ".svg" else "image"
        rows.append((f"{number}_{img.name}", number, title, img, f"{kind}, book/images ({how})"))
    pngs = build_pngs(pages)
    if pngs:
        builds = ", ".join(_rel(r) for r, _ in build_roots())
        notes.append(f"{len(pngs)} PNG plots from the executed build(s) in {builds}")
        for number, title, doc, k, f in pngs:
            rows.append((f"{number}_{Path(doc).name}_fig{k}.png", number, title, f,
                         f"plot {k} of {doc} in the build ({_rel(f)})"))
    else:
        notes.append("no executed book build found (_build/html or _build/_page/*/html): copied only the figures "
                     "of book/images; run `make book` first to export the notebooks' plots as well")
    return rows, notes


def main(argv=None) -> int:
    parser = _Parser(prog="export_figures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder for the figures and index.md (created)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in OUT_DIR")
    args = parser.parse_args(argv)
    out = Path(args.out_dir).resolve()
    try:
        for inside in (ROOT / "book", ROOT / "notebooks"):
            if out == inside.resolve() or inside.resolve() in out.parents:
                raise Refused(f"OUT_DIR {out} is inside {inside}: export outside the book's sources")
        if out.exists() and not out.is_dir():
            raise Refused(f"OUT_DIR {out} exists and is not a folder")
        rows, notes = plan()
        names = [r[0] for r in rows] + ["index.md"]
        taken = [n for n in names if (out / n).exists()]
        if taken and not args.overwrite:
            raise Refused(f"{out / taken[0]} exists ({len(taken)} file(s) in all); pass --overwrite to replace them")
        out.mkdir(parents=True, exist_ok=True)
        for name, number, title, src, origin in rows:
            copy_atomic(src, out / name)
        lines = ["# Figures of *Deep Learning for Automatic Mixing*, by chapter", "",
                 "Written by `python tools/export_figures.py`. Vector figures (SVG) scale to any slide; the PNG "
                 "plots come from an executed build of the book and show its run mode's numbers.", "",
                 "| file | chapter | title | from |", "|---|---|---|---|"]
        order = {p[1]: i for i, p in enumerate(chapters())}
        for name, number, title, src, origin in sorted(rows, key=lambda r: (order.get(r[1], 1e9), r[0])):
            lines.append(f"| [{name}]({name}) | {number} | {title} | {origin} |")
        write_atomic(out / "index.md", "\n".join(lines) + "\n")
    except Refused as err:
        print(f"export_figures.py: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"export_figures.py: error: {err}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    print(f"wrote {len(rows)} figure(s) and index.md into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
