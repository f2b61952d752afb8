"""Reading dashboard pages in tests without a third-party parser: tables by id, elements by class, attributes."""

from __future__ import annotations

from html.parser import HTMLParser


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self._table = attributes.get("id", f"table-{len(self.tables)}")
                self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._depth -= 1
            if self._depth == 0:
                self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(content: bytes | str) -> _Page:
    page = _Page()
    page.feed(content.decode() if isinstance(content, bytes) else content)
    return page


def table(content: bytes | str, table_id: str, *, header: bool = False) -> list[list[str]]:
    """The rows of the table with that id, each a list of cell texts (whitespace collapsed); the header row only if asked."""
    rows = parse(content).tables[table_id]
    return rows if header else rows[1:]


def with_class(content: bytes | str, css_class: str) -> list[dict[str, str]]:
    """The attributes of every element whose class list holds `css_class`."""
    return [attrs for _, attrs in parse(content).elements if css_class in attrs.get("class", "").split()]
