"""MkDocs hook: the manual's formulas rendered to MathML when the site is built.

pymdownx.arithmatex (generic mode) leaves every formula of a page as
``<span class="arithmatex">\\(...\\)</span>`` (inline, written $...$) or
``<div class="arithmatex">\\[...\\]</div>`` (display, written $$...$$); this hook replaces each
with the MathML that latex2mathml makes of it.  Browsers render MathML natively, so the site
needs no JavaScript and no network to show its formulas.  A formula latex2mathml cannot read
stops the build, naming the page and the formula.
"""
from __future__ import annotations

import html
import re

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError

INLINE = re.compile(r'<span class="arithmatex">\\\((.+?)\\\)</span>', re.S)
DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.+?)\\\]</div>', re.S)


def _mathml(tex: str, display: str, page) -> str:
    source = html.unescape(tex).strip()
    try:
        return convert(source, display=display)
    except Exception as err:  # latex2mathml raises several kinds; any of them is a bad formula
        where = page.file.src_uri
        raise PluginError(f"{where}: cannot render the formula {source!r}: {err}") from err


def on_page_content(content: str, page, **kwargs) -> str:
    def display(m):
        return f'<div class="math-display">{_mathml(m.group(1), "block", page)}</div>'

    content = DISPLAY.sub(display, content)
    return INLINE.sub(lambda m: _mathml(m.group(1), "inline", page), content)
