"""The trend chart's SVG, finished: a tooltip on every point, and a form to inline in a page.

Matplotlib writes each point of the chart as a group with the id charts.POINT_GID.
Here each such group gets its tooltip (a <title>, which is also its accessible
name), `tabindex="0"` so that the keyboard reaches it, and `role="img"`.

`inline` gives the markup the patient page embeds (so that the tooltips show, which
they never do in an <img>). The site's Content-Security-Policy forbids inline style,
and matplotlib styles every shape with a `style` attribute and a <style> element:
each declaration becomes the SVG presentation attribute of the same name, which the
policy does not govern (they are attributes, not CSS text). Only properties that are
SVG presentation attributes are kept; anything else is dropped.

Our own matplotlib output is the only input: it is parsed with the standard library's
ElementTree, which resolves no external entities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from xml.etree import ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
# ElementTree's namespace prefixes are process-wide, and other code (a QR code
# library) names the SVG namespace "svg": `_serialised` writes plain names instead.

POINT_ID = re.compile(r"ctc-point-(\d+)")
POINT_CLASS = "ctc-point"

# The CSS properties matplotlib writes that are SVG presentation attributes.
_PRESENTATION = frozenset(
    {
        "clip-path",
        "fill",
        "fill-opacity",
        "fill-rule",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "opacity",
        "stroke",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-opacity",
        "stroke-width",
        "text-anchor",
    }
)


def _tag(name: str) -> str:
    return f"{{{SVG_NS}}}{name}"


def with_point_titles(svg: bytes, titles: Sequence[str]) -> bytes:
    """The SVG with titles[i] as the tooltip and accessible name of point i.

    Raises ValueError when the points drawn and the titles given do not match one to
    one: a tooltip on the wrong point would misreport a result.
    """
    root = _parse(svg)
    found = 0
    for group in root.iter(_tag("g")):
        match = POINT_ID.fullmatch(group.get("id", ""))
        if match is None:
            continue
        index = int(match.group(1))
        if index >= len(titles):
            raise ValueError(f"point {index} has no title ({len(titles)} given)")
        title = ET.Element(_tag("title"))
        title.text = _xml_safe(titles[index])
        group.insert(0, title)
        group.set("tabindex", "0")
        group.set("role", "img")
        group.set("class", POINT_CLASS)
        found += 1
    if found != len(titles):
        raise ValueError(f"{found} points drawn, {len(titles)} titles given")
    return _prolog(svg) + _serialised(root).encode("utf-8")


def inline(svg: bytes, *, label: str) -> str:
    """The SVG as markup for an HTML page: no prolog, no inline CSS, scaled to its box.

    `label` names the chart for assistive technology (the figure's caption says more).
    """
    root = _parse(svg)
    rules = _style_rules(root)
    for name, value in rules.items():
        root.set(name, value)
    for parent in root.iter():
        for child in list(parent):
            if child.tag == _tag("style"):
                parent.remove(child)
    for element in root.iter():
        style = element.attrib.pop("style", None)
        if style is not None:
            for name, value in _declarations(style).items():
                if name in _PRESENTATION:
                    element.set(name, value)
                elif name == "white-space" and value == "pre":
                    element.set("{http://www.w3.org/XML/1998/namespace}space", "preserve")
    # The viewBox keeps the proportions; the page's box gives the width.
    for size in ("width", "height"):
        root.attrib.pop(size, None)
    root.set("role", "group")
    root.set("aria-label", _xml_safe(label))
    root.set("class", "trend-chart")
    # SVG 2's plain href: an HTML parser knows no prefix but "xlink", whatever the
    # serialiser would call it.
    for element in root.iter():
        target = element.attrib.pop(f"{{{XLINK_NS}}}href", None)
        if target is not None:
            element.set("href", target)
    return _serialised(root)


def _serialised(root: ET.Element) -> str:
    """The tree as SVG markup with unprefixed element names and `xlink:href`, whatever
    prefixes other code has registered with ElementTree."""
    svg, xlink = f"{{{SVG_NS}}}", f"{{{XLINK_NS}}}"
    uses_xlink = False
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(svg):
            element.tag = element.tag[len(svg) :]
        for name in [key for key in element.attrib if key.startswith(xlink)]:
            element.set(f"xlink:{name[len(xlink) :]}", element.attrib.pop(name))
            uses_xlink = True
    root.set("xmlns", SVG_NS)
    if uses_xlink:
        root.set("xmlns:xlink", XLINK_NS)
    return ET.tostring(root, encoding="unicode")


def _style_rules(root: ET.Element) -> dict[str, str]:
    """The declarations of matplotlib's `*{...}` rule, which apply to every element."""
    found: dict[str, str] = {}
    for style in root.iter(_tag("style")):
        for block in re.findall(r"\*\s*\{([^}]*)\}", style.text or ""):
            found.update(
                (name, value)
                for name, value in _declarations(block).items()
                if name in _PRESENTATION
            )
    return found


def _declarations(style: str) -> dict[str, str]:
    result = {}
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        if value.strip():
            result[name.strip().lower()] = value.strip()
    return result


def _parse(svg: bytes) -> ET.Element:
    """Matplotlib writes record text as it is, control characters included, which
    XML cannot carry: each becomes U+FFFD before the document is parsed."""
    return ET.fromstring(_xml_safe(svg.decode("utf-8")))


def _prolog(svg: bytes) -> bytes:
    """Whatever precedes the <svg> element (the XML declaration and DOCTYPE), kept."""
    return svg[: svg.index(b"<svg")]


# Characters XML 1.0 cannot carry at all; a tooltip shows record text (a regimen),
# which the database may hold with any of them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
