"""clean: drop rows with nulls (and optionally columns and duplicates) from the raw CSV."""

import sys

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w", buffering=1)

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from snakeflow import tracking
from snakeflow.csvio import BOM, RawCsv
from snakeflow.errors import UserError, run_main
from snakeflow.fileio import atomic_path

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


CHUNK_BYTES = 8 << 20  # the fast path's unit of work: bounds its memory


def _metric_name(column: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", column)[:200] or "_"


def _null_rule(dropna: str | Sequence[str], header: list[str], label: str) -> tuple[str, list[int]]:
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
    Raises UserError for a malformed CSV (ragged rows, duplicate or missing header), a
    missing ``target`` column, or a result without rows; ``dst`` is then left untouched.

    A file with one record per line (the common case) streams through pyarrow in chunks
    of whole lines (multi-threaded parsing, memory bounded by the chunk size) and its kept
    lines are copied as bytes; quotes misplaced within a line are then read leniently, as
    pandas reads them. Anything else (quoted line breaks, blank lines, bare CRs, dropped
    columns, de-duplication, or input pyarrow rejects) goes through the exact, strict
    record-by-record path, which also produces the error messages.
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


def _clean_fast(
    src: Path, dst: Path, *, target: str | None, dropna, chunk_bytes: int = CHUNK_BYTES
) -> CleanStats:
    """One streaming pass: read whole lines in chunks of about ``chunk_bytes``, parse each
    chunk with pyarrow (multi-threaded), write the chunk's kept lines as bytes.

    Raises _NeedsExactPath unless every line is exactly one record: pyarrow must find as
    many records as there are lines, no bare CR may split lines, and no record may end
    inside an open quote (pyarrow accepts one at the end of its input).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
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
    nulls = [0] * len(header)

    def lines(fh):
        """(bytes, numpy view, line end offsets) of whole lines, chunk by chunk."""
        carry = b""
        while chunk := fh.read(chunk_bytes):
            buf = carry + chunk if carry else chunk
            view = np.frombuffer(buf, dtype=np.uint8)
            ends = np.flatnonzero(view == 10)
            if len(ends) == 0:
                carry = buf
                continue
            cut = int(ends[-1]) + 1
            carry = buf[cut:]
            yield buf[:cut], view[:cut], ends
        if carry.endswith(b"\r"):
            raise _NeedsExactPath  # a last line ending in a bare CR
        if carry:  # the last line has no line end: give it the file's
            body = carry + ending
            yield body, np.frombuffer(body, dtype=np.uint8), np.array([len(body) - 1])

    def kept(body: bytes, view, ends):
        if b"\r" in body:
            cr = np.flatnonzero(view == 13)
            if (view[cr + 1] != 10).any():  # body ends with a LF, so cr + 1 is in range
                raise _NeedsExactPath  # a bare CR: pyarrow ends a record there
        table = pacsv.read_csv(pa.py_buffer(body), **options)
        if table.num_rows != len(ends):
            raise _NeedsExactPath  # blank lines, or records spanning lines
        if any("\n" in (col[-1].as_py() or "") for col in table.columns):
            raise _NeedsExactPath  # the last record ends inside an open quote
        for i, col in enumerate(table.columns):
            nulls[i] += col.null_count
        stats.rows_in += len(ends)
        if rule == "none":
            stats.rows_out += len(ends)
            return view
        masks = [table.column(i).is_null() for i in checked]
        drop = masks[0]
        for mask in masks[1:]:
            drop = pc.or_(drop, mask) if rule == "any" else pc.and_(drop, mask)
        keep = np.asarray(pc.invert(drop).combine_chunks(), dtype=bool)
        stats.rows_out += int(keep.sum())
        lengths = np.diff(ends, prepend=-1)
        return view[np.repeat(keep, lengths)]

    try:
        with open(src, "rb") as fh, atomic_path(dst) as tmp, open(tmp, "wb") as out:
            if fh.readline().rstrip(b"\r\n") != header_bytes.rstrip(b"\r\n"):
                raise _NeedsExactPath
            out.write(header_bytes)
            for body, view, ends in lines(fh):
                out.write(kept(body, view, ends))
            stats.nulls = dict(zip(header, nulls))
            stats.dropped_nulls = stats.rows_in - stats.rows_out
            if stats.rows_out == 0:
                raise _NeedsExactPath  # the exact path explains it
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _NeedsExactPath from exc
    return stats


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


def main() -> None:
    params = snakemake.params
    with tracking.step(snakemake) as run:
        src = Path(snakemake.input.csv)
        run.log_input(src, name=snakemake.config["dataset"], context="raw")
        stats = clean_csv(
            src,
            Path(snakemake.output.csv),
            target=params.target,
            drop_columns=params.drop_columns,
            dropna=params.dropna,
            drop_duplicates=params.drop_duplicates,
        )
        run.log_metrics(stats.metrics())
        print(f"kept {stats.rows_out} of {stats.rows_in} rows", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
