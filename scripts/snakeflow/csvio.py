"""Read CSV records together with their exact source text, so kept rows stay byte-identical."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import TextIO

from .errors import UserError

BOM = "\ufeff"
csv.field_size_limit(2**31 - 1)

# The strings pandas.read_csv reads as missing by default (pandas' STR_NA_VALUES);
# tests check that this set and pandas agree on every row.
NA_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


class _Tap:
    """A line iterator that remembers the raw lines the csv reader consumed."""

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self.taken: list[str] = []
        self.lineno = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        self.lineno += 1
        return line

    def pop(self) -> str:
        raw = "".join(self.taken)
        self.taken.clear()
        return raw


class RawCsv:
    """A CSV file opened with ``open(path, encoding="utf-8", newline="")``, read record by record.

    ``header_raw`` is the header's source text (BOM and line end included), ``header`` its
    names (BOM stripped), ``ending`` the line end the file uses. Iterating yields
    ``(fields, raw)`` pairs for each non-blank record, ``raw`` being its exact text (with
    its line end, added if the file's last line lacked one). Ragged records, malformed
    quoting (Python's strict reading), an empty or blank header name and duplicate header
    names raise UserError naming ``label`` and the line.
    """

    def __init__(self, fh: TextIO, label: str):
        self.label = label
        self._tap = _Tap(fh)
        self._reader = csv.reader(self._tap, strict=True)
        self.header_raw, self.header = self._read_header()
        self.ending = "\r\n" if self.header_raw.endswith("\r\n") else "\n"
        if not self.header_raw.endswith(("\n", "\r")):
            self.header_raw += self.ending

    @property
    def lineno(self) -> int:
        return self._tap.lineno

    def _read_header(self) -> tuple[str, list[str]]:
        try:
            for row in self._reader:
                raw = self._tap.pop()
                if row:
                    header = [row[0].removeprefix(BOM), *row[1:]]
                    unnamed = [str(i) for i, name in enumerate(header, 1) if not name.strip()]
                    if unnamed:
                        which = "column" + "s" * (len(unnamed) > 1)
                        raise UserError(
                            f"{self.label} line {self.lineno}: the header has no name for "
                            f"{which} {', '.join(unnamed)}; name every column"
                        )
                    dupes = sorted({n for n in header if header.count(n) > 1})
                    if dupes:
                        names = ", ".join(repr(d)[1:-1] for d in dupes)  # one line, always
                        raise UserError(f"{self.label}: duplicate column names in header: {names}")
                    return raw, header
        except csv.Error as exc:
            raise UserError(f"{self.label} is not a well-formed CSV file: {exc}") from exc
        raise UserError(f"{self.label} is empty: no header line")

    def __iter__(self) -> Iterator[tuple[list[str], str]]:
        width = len(self.header)
        try:
            for row in self._reader:
                raw = self._tap.pop()
                if not row:
                    continue
                if len(row) != width:
                    raise UserError(
                        f"{self.label} line {self.lineno}: expected {width} fields, "
                        f"found {len(row)}; the file is not a well-formed CSV"
                    )
                if not raw.endswith(("\n", "\r")):
                    raw += self.ending
                yield row, raw
        except csv.Error as exc:
            raise UserError(
                f"{self.label} line {self.lineno} is not well-formed CSV: {exc}"
            ) from exc
