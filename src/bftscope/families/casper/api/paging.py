"""The seed's page envelope: express-paginate's ``pageCount`` and ``pages`` links, computed as it did.

``pageCount = ceil(itemCount / limit)``; ``pages`` is ``getArrayPages(req)(3, pageCount, page)``: at most three
links around the current page, ``end = min(max(page + 1, 3), pageCount)``, ``start = max(1, 1 if page < 2 else
end − 2)``. Each link is the request's path and its query again, as Node's ``querystring.stringify`` writes it,
with ``page`` and ``limit`` set to what the middleware made of them (``page`` is added before ``limit`` when the
client sent neither: ``/blocks?page=1&limit=10``). express-paginate found the page in the URL text by string
replacement, which could rewrite another parameter whose value ended in ``page=N``; the link here sets the
parameter itself.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from bftscope.families.casper.api.params import PageRequest

__all__ = ["page_count", "page_links", "query_pairs"]

_URI_COMPONENT_SAFE = "-_.!~*'()"  # what encodeURIComponent (and Node's querystring.escape) leave as they are


def page_count(items: int, limit: int) -> int:
    return -(-items // limit)


def query_pairs(query_string: str) -> list[tuple[str, list[str]]]:
    """The query as Express's ``req.query`` holds it: each key once, in first-seen order, with all its values."""
    out: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        out.setdefault(key, []).append(value)
    return list(out.items())


def _stringify(pairs: list[tuple[str, list[str]]]) -> str:
    return "&".join(f"{quote(k, safe=_URI_COMPONENT_SAFE)}={quote(v, safe=_URI_COMPONENT_SAFE)}"
                    for k, values in pairs for v in values)  # fmt: skip


def page_links(path: str, query_string: str, req: PageRequest, pages: int) -> list[dict[str, object]]:
    """``[{"number", "url"}]``: the (at most three) links express-paginate's ``getArrayPages`` gives."""
    end = min(max(req.page + 1, 3), pages)
    start = max(1, 1 if req.page < 2 else end - 2)
    pairs = query_pairs(query_string)
    keys = [k for k, _ in pairs]
    if "page" not in keys:
        pairs.append(("page", [""]))
    if "limit" not in keys:
        pairs.append(("limit", [""]))
    links: list[dict[str, object]] = []
    for number in range(start, end + 1):
        query = [(k, [str(number)] if k == "page" else [str(req.limit)] if k == "limit" else v) for k, v in pairs]
        links.append({"number": number, "url": f"{path}?{_stringify(query)}"})
    return links
