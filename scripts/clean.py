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


CHUNK_BYTES = 16 << 20


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

    A file with one record per line (the common case) is scanned with pyarrow (multi-
    threaded, streaming) and its kept lines copied as bytes; anything else (quoted line
    breaks, blank lines, dropped columns, de-duplication, or input pyarrow rejects) goes
    through the exact record-by-record path, which also produces the error messages.
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


def _clean_fast(src: Path, dst: Path, *, target: str | None, dropna) -> CleanStats:
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
    try:
        batches = pacsv.open_csv(
            src,
            read_options=pacsv.ReadOptions(block_size=8 << 20, use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=sorted(NA_VALUES),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        if batches.schema.names != header:
            raise _NeedsExactPath
        keep_parts, nulls = [], [0] * len(header)
        for batch in batches:
            for i in range(len(header)):
                nulls[i] += batch.column(i).null_count
            if rule == "none" or batch.num_rows == 0:
                keep_parts.append(np.ones(batch.num_rows, dtype=bool))
                continue
            masks = [batch.column(i).is_null() for i in checked]
            combine = pc.or_ if rule == "any" else pc.and_
            drop = masks[0]
            for mask in masks[1:]:
                drop = combine(drop, mask)
            keep_parts.append(np.asarray(pc.invert(drop), dtype=bool))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _NeedsExactPath from exc
    keep = np.concatenate(keep_parts) if keep_parts else np.zeros(0, dtype=bool)
    stats = CleanStats(
        rows_in=len(keep),
        rows_out=int(keep.sum()),
        columns_in=len(header),
        columns_out=len(header),
        nulls=dict(zip(header, nulls)),
    )
    stats.dropped_nulls = stats.rows_in - stats.rows_out
    if stats.rows_out == 0:
        raise _NeedsExactPath  # the exact path explains it
    with atomic_path(dst) as tmp:
        _copy_kept_lines(src, tmp, header_bytes, keep)
    return stats


def _copy_kept_lines(src: Path, dst: Path, header: bytes, keep) -> None:
    """Copy the header and the data lines of ``src`` whose ``keep`` flag is set, as bytes.

    Raises _NeedsExactPath if the file's lines and pyarrow's rows disagree (blank lines,
    bare CR line ends): then a record is not a line.
    """
    import numpy as np

    ending = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    row = 0
    with open(src, "rb") as fh, open(dst, "wb") as out:
        first = fh.readline()
        if first.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
            raise _NeedsExactPath
        out.write(header)
        carry = b""
        while chunk := fh.read(CHUNK_BYTES):
            buf = carry + chunk
            view = np.frombuffer(buf, dtype=np.uint8)
            ends = np.flatnonzero(view == 10)
            if len(ends) == 0:
                carry = buf
                continue
            starts = np.empty_like(ends)
            starts[0], starts[1:] = 0, ends[:-1] + 1
            lengths = ends - starts
            if (lengths == 0).any() or ((lengths == 1) & (view[ends - 1] == 13)).any():
                raise _NeedsExactPath  # blank lines: pyarrow skips them
            quotes = np.cumsum(view == 34)[ends]
            quotes[1:] -= quotes[:-1].copy()
            if (quotes % 2).any():
                raise _NeedsExactPath  # a quoted line break or a stray quote
            flags = keep[row : row + len(ends)]
            if len(flags) != len(ends):
                raise _NeedsExactPath
            picked = np.flatnonzero(flags)
            out.write(b"".join([buf[s : e + 1] for s, e in zip(starts[picked], ends[picked])]))
            row += len(ends)
            carry = buf[ends[-1] + 1 :]
        if carry:
            if row >= len(keep) or carry.count(b'"') % 2:
                raise _NeedsExactPath
            if keep[row]:
                out.write(carry + ending)
            row += 1
    if row != len(keep):
        raise _NeedsExactPath


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
