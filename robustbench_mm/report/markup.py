"""A tiny document model rendered to Markdown or to a self-contained HTML page.

The report is built once as a list of blocks and written in either format, so the two never
drift apart. Cells may hold ``**bold**``; images are inlined as base64 in HTML. Both renderers
escape the text (it holds paths and names we did not choose) and keep our own markup.
"""

from __future__ import annotations

import base64
import bisect
import html
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | table | img | code
    text: str = ""
    table: pd.DataFrame | None = None
    path: str = ""  # image path relative to the document


def markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(md_text(str(c), cell=True) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(md_text(str(v), cell=True) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            parts.append("#" * int(block.kind[1]) + " " + md_text(block.text, cell=False, one_line=True))
        elif block.kind == "p":
            lines = [line for line in block.text.splitlines() if line.strip()]  # a blank line would end the paragraph
            parts.append(md_text("\n".join(lines)))
        elif block.kind == "code":
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", block.text)), default=0))
            parts.append(f"{fence}\n{block.text}\n{fence}")  # no backtick run inside can close it
        elif block.kind == "table" and block.table is not None:
            parts.append(markdown_table(block.table))
        elif block.kind == "img":
            parts.append(f"![{md_text(block.text, one_line=True)}]({quote(block.path, safe='/._-')})")
    return "\n\n".join(parts) + "\n"


# ------------------------------------------------------------------------------ Markdown escaping
#
# Text in the report mixes our own markup (**bold**, *italic*, `code`) with values we did not
# choose: a dataset path, run, method and class names. A renderer that passes HTML would run
# an ``<img onerror=...>`` in a path, so text is escaped the way CommonMark reads it. Code spans
# are found exactly as CommonMark finds them (a run of n backticks up to the next run of exactly
# n) and kept, except that a span is split around ``<``, ``>`` and ``&``, written as entities
# between the pieces; outside them every character that could start HTML, an entity, a link or
# another code span is escaped (``<``, ``>``, ``&``, backslash, a stray backtick, ``](``), so the
# renderer finds exactly our code spans and no tag. Emphasis stays: ``*`` is not escaped.

_OUTSIDE_CODE = {"\\": "\\\\", "`": "\\`", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(text: str, cell: bool = False, one_line: bool = False) -> str:
    """``text`` for Markdown with our own ``**``/``*``/`` ` `` markup intact and nothing else live.

    ``cell``: a table cell (pipes escaped, one line); ``one_line``: a heading or alt text."""
    out = []
    for is_code, part in _code_spans(text):
        if is_code:
            part = _code_span(part.replace("\r", " ").replace("\n", " "))  # a span shows a newline as a space anyway
        else:
            part = "".join(_OUTSIDE_CODE.get(c, c) for c in part).replace("](", "\\](")
            if cell or one_line:
                part = part.replace("\r", " ").replace("\n", " ")
        out.append(part.replace("|", "\\|") if cell else part)
    return "".join(out)


def _code_span(span: str) -> str:
    """A code span with no raw ``<``, ``>`` or ``&`` (so no renderer, compliant or not, can see a
    tag in it): the span is closed around each such character, which is written as an entity."""
    opening = re.match(r"`+", span)
    assert opening is not None, "a code span starts with a backtick"
    delimiter = opening.group(0)
    pieces = re.split(r"([<>&])", span[len(delimiter) : -len(delimiter)])
    if len(pieces) == 1:
        return span
    out = []
    for piece in pieces:
        if piece in ("<", ">", "&"):
            out.append(_OUTSIDE_CODE[piece])
        elif piece:
            pad = " " if piece.startswith("`") or piece.endswith("`") else ""  # CommonMark strips one space each side
            out.append(f"{delimiter}{pad}{piece}{pad}{delimiter}")
    return "".join(out)


def _code_spans(text: str) -> list[tuple[bool, str]]:
    """Split ``text`` into (is_code_span, piece) as CommonMark would (no backslash escapes: we
    escape every backslash and stray backtick outside the spans ourselves)."""
    runs = [(m.start(), m.end()) for m in re.finditer(r"`+", text)]
    by_length: dict[int, list[int]] = {}  # run length -> indices of the runs of that length
    for index, (start, end) in enumerate(runs):
        by_length.setdefault(end - start, []).append(index)
    pieces, done, index = [], 0, 0
    while index < len(runs):
        start, end = runs[index]
        same = by_length[end - start]
        after = bisect.bisect_right(same, index)
        if after == len(same):
            index += 1  # no later run of this length: the run is plain text
            continue
        closer = same[after]
        if start > done:
            pieces.append((False, text[done:start]))
        pieces.append((True, text[start : runs[closer][1]]))
        done, index = runs[closer][1], closer + 1
    if done < len(text):
        pieces.append((False, text[done:]))
    return pieces


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    escaped = re.sub(r"(?<![*\w])\*([^*]+?)\*(?![*\w])", r"<i>\1</i>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def to_html(blocks: list[Block], base_dir: Path, title: str) -> str:
    body = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            body.append(f"<{block.kind}>{_inline(block.text)}</{block.kind}>")
        elif block.kind == "p" and all(line.startswith("- ") for line in block.text.splitlines()):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in block.text.splitlines())
            body.append(f"<ul>{items}</ul>")
        elif block.kind == "p":
            body.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "code":
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif block.kind == "table" and block.table is not None:
            head = "".join(f"<th>{_inline(str(c))}</th>" for c in block.table.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(str(v))}</td>" for v in row) + "</tr>"
                for row in block.table.itertuples(index=False)
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "img":
            data = base64.b64encode((base_dir / block.path).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.text)}</figcaption></figure>"
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        "figure{margin:1em 0}figcaption{color:#666;font-size:13px}pre{background:#f6f6f6;padding:8px;overflow:auto}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
