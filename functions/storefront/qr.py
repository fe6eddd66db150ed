"""A payment's QR code (WeChat Pay Native, Alipay precreate) as an SVG the order page draws inline.

Plain SVG: one white square and one path, no script, no style attribute and no size (the page's own
style sizes it), so the page's Content-Security-Policy allows it as it is."""

import io

import segno


def qr_svg(content: str) -> str:
    """The QR code of `content` (a payment URL) as a standalone SVG element with a 4-module quiet zone."""
    code = segno.make(content, error="m", micro=False)  # M: readable with 15% of it smudged
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        nl=False,
        omitsize=True,
        border=4,
        dark="#000",
        light="#fff",
    )
    return out.getvalue().decode()
