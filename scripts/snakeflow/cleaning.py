"""clean's streaming CSV engine: the rows that pass a null rule, copied byte for byte.

The public API is :func:`clean_csv` and the :class:`CleanStats` it returns. Whichever of its
two paths a file takes, it guarantees:

- kept rows are byte-identical to the input (quoting, number formats, line ends), in input
  order, and so is the header (with its BOM); only dropped columns make it rewrite the
  header and rows (quoted minimally), keeping the line end and the BOM. Blank lines are
  skipped;
- a null is exactly a field pandas.read_csv reads as missing by default
  (:data:`snakeflow.csvio.NA_VALUES`), and the null counts are the same on both paths;
- whether a file is accepted depends on the file alone, not on the settings or the path:
  a malformed CSV (ragged rows, quoting Python's strict csv reader rejects, a duplicate,
  empty or missing header name, text that is not UTF-8) is refused with one UserError line;
- ``dst`` appears atomically and complete, or not at all (on any error it is untouched);
- memory does not grow with the file (except for one digest per kept row when dropping
  duplicates): the fast path works in chunks of about :data:`CHUNK_BYTES`.

The fast path (:func:`_clean_fast`) streams a file with one record per line through pyarrow
(multi-threaded) in chunks of whole lines and copies the kept lines as bytes, once a
vectorised check of each chunk's quotes has shown that the strict reader reads it alike
(:func:`_parse`); for anything it cannot vouch for it raises ``_NeedsExactPath``, and the
exact, record-by-record path (:func:`_clean_exact`) decides and writes the error messages.
numpy and pyarrow are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .csvio import BOM, NA_VALUES, RawCsv
from .errors import UserError
from .fileio import atomic_path

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["CleanStats", "clean_csv"]

CHUNK_BYTES = 8 << 20  # the fast path's unit of work: bounds its memory
LF, CR, QUOTE, COMMA = b"\n"[0], b"\r"[0], b'"'[0], b","[0]


@dataclass
class CleanStats:
    """Row and null counts of one clean."""

    rows_in: int = 0
    rows_out: int = 0
    dropped_nulls: int = 0
    dropped_duplicates: int = 0
    columns_in: int = 0
    columns_out: int = 0
    nulls: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The counts as MLflow metrics; ``nulls.<column>`` per input column."""
        out = {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_dropped_nulls": self.dropped_nulls,
            "rows_dropped_duplicates": self.dropped_duplicates,
            "columns_in": self.columns_in,
            "columns_out": self.columns_out,
        }
        out |= {f"nulls.{_metric_name(col)}": n for col, n in self.nulls.items()}
        return out


def _metric_name(column: str) -> str:
    """``column`` as an MLflow metric name: characters MLflow refuses become ``_``, at most 200."""
    return re.sub(r"[^\w\-. /]", "_", column)[:200] or "_"


def _null_rule(dropna: str | Sequence[str], header: list[str], label: str) -> tuple[str, list[int]]:
    """``dropna`` as a rule (``"any"``, ``"all"`` or ``"none"``) and the indices in ``header``
    of the columns it checks; UserError for an unknown rule or a column ``label`` lacks."""
    if isinstance(dropna, str):
        if dropna not in ("any", "all", "none"):
            raise UserError(f"clean.dropna: '{dropna}' is not any, all, none or a column list")
        return dropna, list(range(len(header)))
    missing = [c for c in dropna if c not in header]
    if missing:
        raise UserError(
            f"clean.dropna names columns that {label} does not have: {', '.join(missing)}"
        )
    return "any", [header.index(c) for c in dropna]


def clean_csv(
    src: Path,
    dst: Path,
    *,
    target: str | None = None,
    drop_columns: Sequence[str] = (),
    dropna: str | Sequence[str] = "any",
    drop_duplicates: bool = False,
) -> CleanStats:
    """Write the rows of ``src`` that pass the null rule to ``dst``, unchanged, atomically.

    - ``drop_columns`` are removed first (names ``src`` lacks are ignored);
    - ``dropna``: ``"any"`` drops a row with a null in any column, ``"all"`` a row whose
      fields are all null, ``"none"`` keeps all, a list of columns drops a row with a null in
      any of them. A null is a field pandas.read_csv reads as missing by default;
    - ``drop_duplicates`` drops rows equal to an earlier kept row.

    Kept rows are copied byte for byte (quoting, number formats, line ends) unless columns
    are dropped, in which case they are re-quoted minimally. Blank lines are skipped.
    Raises UserError for a malformed CSV (ragged rows, quoting Python's strict csv reader
    rejects, a duplicate, empty or missing header name), a missing ``target`` column, or a
    result without rows; ``dst`` is then left untouched. Whether a file is accepted depends
    on the file alone, not on the settings.

    A file with one record per line (the common case) streams through pyarrow in chunks
    of whole lines (multi-threaded parsing, memory bounded by the chunk size) and its kept
    lines are copied as bytes, once a vectorised check of each chunk's quotes has shown
    that the strict reader would read it the same way. Anything else (quoted line breaks,
    blank lines, bare CRs, misplaced quotes, dropped columns, de-duplication, or input
    pyarrow rejects) goes through the exact, strict record-by-record path, which also
    produces the error messages.
    """
    if not drop_columns and not drop_duplicates:
        try:
            return _clean_fast(src, dst, target=target, dropna=dropna)
        except _NeedsExactPath:
            pass
    return _clean_exact(
        src,
        dst,
        target=target,
        drop_columns=drop_columns,
        dropna=dropna,
        drop_duplicates=drop_duplicates,
    )


class _NeedsExactPath(Exception):
    """The fast path cannot vouch for this file; use the record-by-record path."""


class _Lines(NamedTuple):
    """Whole lines of the input: their bytes, a uint8 view of them, the offset of each LF."""

    body: bytes
    view: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, body: bytes) -> _Lines:
        import numpy as np

        view = np.frombuffer(body, dtype=np.uint8)
        return cls(body, view, np.flatnonzero(view == LF))

    def select(self, keep: np.ndarray | None) -> np.ndarray:
        """The bytes of the lines where ``keep`` is true; all of them if ``keep`` is None."""
        import numpy as np

        if keep is None:
            return self.view
        return self.view[np.repeat(keep, np.diff(self.ends, prepend=-1))]


def _clean_fast(
    src: Path,
    dst: Path,
    *,
    target: str | None,
    dropna: str | Sequence[str],
    chunk_bytes: int = CHUNK_BYTES,
) -> CleanStats:
    """One streaming pass: read whole lines in chunks of about ``chunk_bytes``, parse each
    chunk with pyarrow (multi-threaded), write the chunk's kept lines as bytes.

    Raises _NeedsExactPath unless every line is exactly one record that the exact path reads
    the same way (see :func:`_parse`), so that both paths accept and reject the same files.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    label = str(src)
    try:
        with open(src, encoding="utf-8", newline="") as fh:
            reader = RawCsv(fh, label)
            header, header_bytes = reader.header, reader.header_raw.encode()
    except (UserError, UnicodeDecodeError) as exc:
        raise _NeedsExactPath from exc
    if target is not None and target not in header:
        raise _NeedsExactPath
    rule, checked = _null_rule(dropna, header, label)
    ending = b"\r\n" if header_bytes.endswith(b"\r\n") else b"\n"
    options = {
        "read_options": pacsv.ReadOptions(
            column_names=header, block_size=max(chunk_bytes // 8, 1 << 16), use_threads=True
        ),
        "parse_options": pacsv.ParseOptions(newlines_in_values=True),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=sorted(NA_VALUES),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    }
    stats = CleanStats(columns_in=len(header), columns_out=len(header))
    nulls = np.zeros(len(header), dtype=np.int64)
    with open(src, "rb") as fh, atomic_path(dst) as tmp, open(tmp, "wb") as out:
        if fh.readline().rstrip(b"\r\n") != header_bytes.rstrip(b"\r\n"):
            raise _NeedsExactPath
        out.write(header_bytes)
        for lines in _whole_lines(fh, chunk_bytes, ending):
            table = _parse(lines, options)
            keep = _kept_rows(table, rule, checked)
            nulls += [col.null_count for col in table.columns]
            stats.rows_in += len(lines.ends)
            stats.rows_out += len(lines.ends) if keep is None else int(keep.sum())
            out.write(lines.select(keep))
        stats.nulls = dict(zip(header, nulls.tolist()))
        stats.dropped_nulls = stats.rows_in - stats.rows_out
        if stats.rows_out == 0:
            raise _NeedsExactPath  # the exact path explains it
    return stats


def _whole_lines(fh: BinaryIO, chunk_bytes: int, ending: bytes) -> Iterator[_Lines]:
    """The rest of ``fh`` as chunks of whole lines, about ``chunk_bytes`` each; a last line
    without a line end gets ``ending``, one ending in a bare CR raises _NeedsExactPath."""
    carry = b""
    while chunk := fh.read(chunk_bytes):
        buf = carry + chunk if carry else chunk
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            carry = buf
            continue
        carry = buf[cut:]
        yield _Lines.of(buf[:cut])
    if carry.endswith(b"\r"):
        raise _NeedsExactPath
    if carry:
        yield _Lines.of(carry + ending)


def _parse(lines: _Lines, options: dict) -> pa.Table:
    """pyarrow's table of ``lines`` if each line is one record that the exact path reads alike.

    pyarrow is lenient where Python's strict csv reader is not: it ends a record at a bare
    CR, skips blank lines, lets a record run on to the next line or end inside an open
    quote at the end of its input, and reads on after a closing quote (``"a"b`` is ``ab``).
    Anything of the kind raises _NeedsExactPath, which decides (and names the line).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if b"\r" in lines.body:
        cr = np.flatnonzero(lines.view == CR)
        if (lines.view[cr + 1] != LF).any():  # the body ends with a LF, so cr + 1 is in range
            raise _NeedsExactPath  # a bare CR: pyarrow ends a record there
    try:
        table = pacsv.read_csv(pa.py_buffer(lines.body), **options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _NeedsExactPath from exc  # ragged rows, not UTF-8, ...
    if table.num_rows != len(lines.ends):
        raise _NeedsExactPath  # blank lines, or records spanning lines
    unsure = _unvouched_lines(lines.view, lines.ends)
    if unsure.any() and not _strict_records(lines.select(unsure), int(unsure.sum())):
        raise _NeedsExactPath  # a quote the exact path rejects, or a record spanning lines
    return table


def _unvouched_lines(view: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mask of the lines (each ending at an LF in ``ends``, without bare CRs) whose quotes a
    vectorised check cannot vouch for, given that pyarrow read one record per line.

    Quotes are vouched for when they are exactly those of complete quoted fields: counted in
    order, each odd one (1st, 3rd, ...) opens a field (at the start of a line or after a
    comma) or is the second of a doubled quote (after a quote), each even one closes a field
    (before a comma or a line end) or starts a doubled quote (before a quote), and their
    number is even. Outside quotes every comma then ends a field and every LF a record, so
    Python's strict reader reads these lines as pyarrow does. Counted over the whole chunk
    this is the common case and costs a few vectorised passes over the quotes; otherwise
    they are counted from each line's start, and the lines that fail hold a quote inside an
    unquoted field (``5'10"``, which is fine) or a misplaced one (which is not): the strict
    reader decides (:func:`_strict_records`).
    """
    import numpy as np

    quotes = np.flatnonzero(view == QUOTE)
    unsure = np.zeros(len(ends), dtype=bool)
    if (
        len(quotes) % 2 == 0
        and _opens(view, quotes[0::2]).all()
        and _closes(view, quotes[1::2]).all()
    ):
        return unsure
    starts = np.concatenate(([0], ends[:-1] + 1))
    line = np.searchsorted(ends, quotes)
    first = np.searchsorted(quotes, starts)  # the index of each line's first quote
    odd = (np.arange(len(quotes)) - first[line]) % 2 == 0  # the 1st, 3rd, ... of its line
    vouched = np.empty(len(quotes), dtype=bool)
    vouched[odd] = _opens(view, quotes[odd])
    vouched[~odd] = _closes(view, quotes[~odd])
    unsure[line[~vouched]] = True
    unsure |= np.diff(first, append=len(quotes)) % 2 == 1  # an odd number on the line
    return unsure


def _opens(view: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Which ``quotes`` may open a field or end a doubled quote, by the byte before them."""
    before = view[quotes - 1]  # for a quote at 0 this reads the last byte, and is ignored
    return (quotes == 0) | (before == COMMA) | (before == LF) | (before == QUOTE)


def _closes(view: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Which ``quotes`` may close a field or start a doubled quote, by the byte after them."""
    after = view[quotes + 1]  # in range: the last byte is a LF
    return (after == COMMA) | (after == LF) | (after == CR) | (after == QUOTE)


def _strict_records(data: np.ndarray, count: int) -> bool:
    """Whether ``data``, ``count`` whole lines, is ``count`` records to the exact path's reader."""
    try:
        text = data.tobytes().decode()
        records = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), strict=True))
    except (csv.Error, UnicodeDecodeError):
        return False
    return records == count


def _kept_rows(table: pa.Table, rule: str, checked: list[int]) -> np.ndarray | None:
    """Mask of the rows of ``table`` that pass the null rule; None when all of them do."""
    import numpy as np
    import pyarrow.compute as pc

    if rule == "none" or not checked:
        return None
    nulls = [table.column(i).is_null() for i in checked]
    drop = nulls[0]
    for mask in nulls[1:]:
        drop = pc.or_(drop, mask) if rule == "any" else pc.and_(drop, mask)
    return np.asarray(pc.invert(drop).combine_chunks(), dtype=bool)


def _clean_exact(
    src: Path,
    dst: Path,
    *,
    target: str | None = None,
    drop_columns: Sequence[str] = (),
    dropna: str | Sequence[str] = "any",
    drop_duplicates: bool = False,
) -> CleanStats:
    """The record-by-record clean (see :func:`clean_csv`)."""
    label = str(src)
    stats = CleanStats()
    seen: set[bytes] = set()
    try:
        with open(src, encoding="utf-8", newline="") as fh, atomic_path(dst) as tmp:
            reader = RawCsv(fh, label)
            header = reader.header
            if target is not None and target not in header:
                raise UserError(
                    f"target column '{target}' is not in {label} "
                    f"(columns: {', '.join(header)}); set target to one of them"
                )
            if target is not None and target in drop_columns:
                raise UserError(f"clean.drop_columns removes the target column '{target}'")
            keep = [i for i, name in enumerate(header) if name not in set(drop_columns)]
            names = [header[i] for i in keep]
            rule, checked = _null_rule(dropna, names, label)
            rewrite = len(keep) != len(header)
            stats.columns_in, stats.columns_out = len(header), len(keep)
            nulls = [0] * len(header)
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator=reader.ending)
                if rewrite:
                    out.write(BOM if reader.header_raw.startswith(BOM) else "")
                    writer.writerow(names)
                else:
                    out.write(reader.header_raw)
                for row, raw in reader:
                    stats.rows_in += 1
                    is_null = [value in NA_VALUES for value in row]
                    for i, null in enumerate(is_null):
                        nulls[i] += null
                    fields = [row[i] for i in keep] if rewrite else row
                    flags = [is_null[keep[i]] for i in checked]
                    if (rule == "any" and any(flags)) or (rule == "all" and all(flags)):
                        stats.dropped_nulls += 1
                        continue
                    if drop_duplicates:
                        key = hashlib.blake2b("\0".join(fields).encode(), digest_size=16).digest()
                        if key in seen:
                            stats.dropped_duplicates += 1
                            continue
                        seen.add(key)
                    if rewrite:
                        writer.writerow(fields)
                    else:
                        out.write(raw)
                    stats.rows_out += 1
            stats.nulls = dict(zip(header, nulls))
            if stats.rows_out == 0:
                raise UserError(
                    f"clean left no rows: {stats.rows_in} row(s) in {label}, "
                    f"{stats.dropped_nulls} dropped for nulls (clean.dropna={dropna!r}), "
                    f"{stats.dropped_duplicates} as duplicates; relax clean.dropna"
                )
    except UnicodeDecodeError as exc:
        raise UserError(f"{label} is not UTF-8 text ({exc.reason})") from exc
    return stats
