"""HTML: the main content only (navigation, cookie banners, footers removed), headings and tables kept.

Pages with semantic markup (``<main>``/``<article>``) are read directly with BeautifulSoup; other pages go
through trafilatura's main-content extraction. Either way the result is Markdown, parsed like a ``.md`` file.
"""

from __future__ import annotations

import re

import trafilatura
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag

from knowledge.cleaning import normalise
from knowledge.parsers.markdown import parse_markdown_text
from knowledge.sniff import decode_text
from knowledge.types import ParsedDocument

_BOILERPLATE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "iframe",
    "button",
)
_BOILERPLATE_HINT = re.compile(
    r"cookie|consent|banner|breadcrumb|navbar|sidebar|footer|header|menu|related|share|"
    r"newsletter|advert|promo",
    re.I,
)
_BLOCKS = {"p", "div", "section", "article", "main", "blockquote", "pre", "dd", "dt", "figcaption", "address"}


def _strip_boilerplate(root: Tag) -> None:
    for tag in root.find_all(_BOILERPLATE_TAGS):
        tag.decompose()
    for tag in root.find_all(True):
        if not isinstance(tag, Tag) or tag.attrs is None:
            continue
        classes = tag.get("class")
        class_names = [str(c) for c in classes] if isinstance(classes, list) else [str(classes or "")]
        marker = " ".join([*class_names, str(tag.get("id", "")), str(tag.get("role", ""))])
        if marker.strip() and _BOILERPLATE_HINT.search(marker) and tag.name not in ("main", "article", "body"):
            tag.decompose()


def _text(tag: Tag) -> str:
    return normalise(tag.get_text(" ", strip=True))


def _to_markdown(root: Tag) -> str:
    out: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                text = normalise(str(child))
                if text:
                    out.append(text)
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name or ""
            if re.fullmatch(r"h[1-6]", name):
                out.append("\n\n" + "#" * int(name[1]) + " " + _text(child) + "\n\n")
            elif name in ("ul", "ol"):
                out.append("\n\n")
                for index, item in enumerate(child.find_all("li", recursive=False), start=1):
                    marker = f"{index}." if name == "ol" else "-"
                    out.append(f"{marker} {_text(item)}\n")
                out.append("\n")
            elif name == "table":
                rows = [[_text(cell) for cell in tr.find_all(["th", "td"])] for tr in child.find_all("tr")]
                rows = [r for r in rows if any(r)]
                if rows:
                    width = max(len(r) for r in rows)
                    out.append("\n\n| " + " | ".join(rows[0] + [""] * (width - len(rows[0]))) + " |\n")
                    out.append("|" + "---|" * width + "\n")
                    for row in rows[1:]:
                        out.append("| " + " | ".join(row + [""] * (width - len(row))) + " |\n")
                    out.append("\n")
            elif name == "br":
                out.append("\n")
            elif name in _BLOCKS:
                out.append("\n\n")
                walk(child)
                out.append("\n\n")
            else:
                walk(child)

    walk(root)
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip()


def parse_html_text(html: str) -> ParsedDocument:
    """Parse decoded HTML."""
    soup = BeautifulSoup(html, "lxml")
    title = normalise(soup.title.get_text()) if soup.title else None
    if title:
        title = re.split(r"\s+[|\-–]\s+", title)[0] or title
    root = soup.find("main") or soup.find("article") or soup.find(None, {"role": "main"})
    markdown: str | None = None
    if isinstance(root, Tag):
        _strip_boilerplate(root)
        markdown = _to_markdown(root)
    else:
        markdown = trafilatura.extract(
            html, output_format="markdown", include_tables=True, include_formatting=True, favor_recall=True
        )
        if not markdown and isinstance(soup.body, Tag):
            _strip_boilerplate(soup.body)
            markdown = _to_markdown(soup.body)
    document = parse_markdown_text(markdown or "", fmt="html")
    return ParsedDocument(title=title or document.title, sections=document.sections, pages=None, format="html")


def parse(data: bytes) -> ParsedDocument:
    """Parse an HTML page."""
    return parse_html_text(decode_text(data))
