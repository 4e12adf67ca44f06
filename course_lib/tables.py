"""A results table: a dict of rows that prints as aligned text, for evaluation and probe figures."""

import math
from typing import Mapping, Sequence, Tuple


def percent(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def ci(low: float, high: float) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


class Table(dict):
    """Rows keyed by name ("new/test/mc", a dish id, or "all"); a dict, printed as a text table."""

    def __init__(self, rows: Mapping[str, dict] = (), columns: Sequence[Tuple[str, object]] = (), title: str = ""):
        super().__init__(rows)
        self.columns = list(columns)  # (header, function of a row -> text)
        self.title = title

    @property
    def text(self) -> str:
        header = ["", *[name for name, _ in self.columns]]
        lines = [[key, *[str(fmt(row)) for _, fmt in self.columns]] for key, row in self.items()]
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
        rendered = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [header, *lines]]
        return "\n".join(([self.title] if self.title else []) + rendered)

    def to_dict(self) -> dict:
        return {key: dict(row) for key, row in self.items()}

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.text)
