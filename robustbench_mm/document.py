"""A tiny document model rendered to Markdown or to a self-contained HTML page.

The report is built once as a list of blocks and written in either format, so the two never
drift apart. Cells may hold ``**bold**``; images are inlined as base64 in HTML.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Block:
    kind: str  # h1 | h2 | h3 | p | table | img | code
    text: str = ""
    table: pd.DataFrame | None = None
    path: str = ""  # image path relative to the document


def markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            parts.append("#" * int(block.kind[1]) + " " + block.text)
        elif block.kind == "p":
            parts.append(block.text)
        elif block.kind == "code":
            parts.append("```\n" + block.text + "\n```")
        elif block.kind == "table" and block.table is not None:
            parts.append(markdown_table(block.table))
        elif block.kind == "img":
            parts.append(f"![{block.text}]({block.path})")
    return "\n\n".join(parts) + "\n"


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
            body.append(f'<figure><img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(block.text)}</figcaption></figure>')
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        "figure{margin:1em 0}figcaption{color:#666;font-size:13px}pre{background:#f6f6f6;padding:8px;overflow:auto}"
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
