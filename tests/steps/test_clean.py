"""clean_csv: rows kept byte for byte, pandas' null semantics, malformed input refused."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeflow import cleaning
from snakeflow.cleaning import clean_csv
from snakeflow.csvio import NA_VALUES
from snakeflow.errors import UserError
from support import expected_clean, titanic_rows, to_csv


def run(tmp_path, data: bytes | str, **kwargs):
    src, dst = tmp_path / "in.csv", tmp_path / "out" / "out.csv"
    src.write_bytes(data.encode() if isinstance(data, str) else data)
    stats = clean_csv(src, dst, **kwargs)
    return stats, dst.read_bytes().decode()


def test_default_drops_rows_with_any_null(tmp_path):
    rows = titanic_rows(200)
    stats, out = run(tmp_path, to_csv(rows), target="Survived")
    assert out.encode() == to_csv(expected_clean(rows))
    assert stats.rows_in == 200
    assert stats.rows_out + stats.dropped_nulls == stats.rows_in
    assert stats.nulls["Age"] == sum(1 for r in rows[1:] if r[5] == "")


def test_kept_rows_are_unchanged(tmp_path):
    data = (
        "id,age,name,note\r\n"
        '1,22,"Braund, Mr. Owen ""Harris""",x\r\n'
        '2,,"Dropped, Mr.",y\r\n'
        '3,22.0,"multi\r\nline",z\r\n'
        '4,007,plain,"quoted"\r\n'
    )
    stats, out = run(tmp_path, data)
    assert out == data.replace('2,,"Dropped, Mr.",y\r\n', "")
    assert stats.rows_out == 3


def test_bom_and_missing_final_newline(tmp_path):
    data = "\ufeffa,b\n1,2\n,3\n4,5"
    _, out = run(tmp_path, data, target="a")
    assert out == "\ufeffa,b\n1,2\n4,5\n"


def test_pandas_na_spellings(tmp_path):
    data = "a,b\n" + "".join(f"{v},1\n" for v in sorted(NA_VALUES)) + "keep,1\n NA,1\n"
    stats, out = run(tmp_path, data)
    assert out == "a,b\nkeep,1\n NA,1\n"
    assert stats.dropped_nulls == len(NA_VALUES)


@pytest.mark.parametrize(
    ("dropna", "kept"),
    [
        ("any", ["1,2,3"]),
        ("all", ["1,2,3", "1,,", ",,3"]),
        ("none", ["1,2,3", "1,,", ",,", ",,3"]),
        (["a"], ["1,2,3", "1,,"]),
        (["b", "c"], ["1,2,3"]),
        ([], ["1,2,3", "1,,", ",,", ",,3"]),  # no column to check: all kept, on both paths
    ],
)
def test_null_rules(tmp_path, dropna, kept):
    _, out = run(tmp_path, "a,b,c\n1,2,3\n1,,\n,,\n,,3\n", dropna=dropna)
    assert out.splitlines()[1:] == kept


def test_drop_columns_then_nulls_and_duplicates(tmp_path):
    data = 'id,cabin,name,age\n1,,"Smith, J",22\n2,C1,"Smith, J",22\n3,,"Doe",\n'
    stats, out = run(tmp_path, data, drop_columns=["cabin", "id", "nope"], drop_duplicates=True)
    assert out == 'name,age\n"Smith, J",22\n'
    assert (stats.rows_in, stats.rows_out, stats.dropped_nulls, stats.dropped_duplicates) == (
        3,
        1,
        1,
        1,
    )
    assert (stats.columns_in, stats.columns_out) == (4, 2)


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ("a,b\n1,2\n", {"target": "label"}, "target column 'label' is not in"),
        ("a,b\n1,2\n", {"target": "a", "drop_columns": ["a"]}, "drop_columns removes the target"),
        ("a,b\n1,2\n", {"dropna": ["zz"]}, "clean.dropna names columns"),
        ("a,b\n,2\n1,\n", {}, "clean left no rows"),
        ("a,b\n", {}, "clean left no rows"),
        ("", {}, "no header"),
        ("a,a\n1,2\n", {}, "duplicate column names"),
        ("a,,b\n1,2,3\n", {}, "line 1: the header has no name for column 2;"),
        ("a,b,\n1,2,3\n", {}, "line 1: the header has no name for column 3;"),
        ('\ufeffa,"", \r\n1,2,3\r\n', {}, "line 1: the header has no name for columns 2, 3;"),
        ('\n""\n1\n', {}, "line 2: the header has no name for column 1;"),
        ("a,b\n1,2\n3,4,5\n", {}, "line 3: expected 2 fields, found 3"),
        ('a,b\n1,"unterminated\n', {}, "not (a )?well-formed CSV"),
        (b"a,b\n\xe9,1\n", {}, "not UTF-8"),
    ],
)
def test_malformed_or_wrong_input(tmp_path, data, kwargs, message):
    with pytest.raises(UserError, match=message):
        run(tmp_path, data, **kwargs)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


cell = st.one_of(
    st.sampled_from(sorted(NA_VALUES)),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\r"),
        max_size=12,
    ),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "22", "22.0", " NA", "ünï", "x" * 300]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ncols=st.integers(1, 4),
    data=st.data(),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_property_matches_pandas_and_keeps_rows(tmp_path, ncols, data, ending, bom):
    header = [f"c{i}" for i in range(ncols)]
    rows = data.draw(st.lists(st.lists(cell, min_size=ncols, max_size=ncols), max_size=12))
    rows = [r for r in rows if any(v != "" for v in r) or ncols > 1]  # a lone "" is a blank line
    buf = io.StringIO()
    csv.writer(buf, lineterminator=ending).writerows([header, *rows])
    text = ("\ufeff" if bom else "") + buf.getvalue()
    src = tmp_path / "p.csv"
    src.write_bytes(text.encode())
    dst = tmp_path / "p-out.csv"
    dst.unlink(missing_ok=True)  # tmp_path is shared by the examples
    frame = pd.read_csv(src, dtype=str, keep_default_na=True, skip_blank_lines=False)
    expect = [row for row, null in zip(rows, frame.isna().any(axis=1)) if not null]
    try:
        stats = clean_csv(src, dst)
    except UserError as exc:
        assert not expect, exc  # only an all-dropped result may fail
        assert not dst.exists()
        return
    exact, fast = tmp_path / "p-exact.csv", tmp_path / "p-fast.csv"
    exact.unlink(missing_ok=True)
    fast.unlink(missing_ok=True)
    assert cleaning._clean_exact(src, exact) == stats  # the fast path agrees with the exact one
    assert exact.read_bytes() == dst.read_bytes()
    try:  # also when its chunks end anywhere
        chunk = data.draw(st.integers(1, 64))
        assert (
            cleaning._clean_fast(src, fast, target=None, dropna="any", chunk_bytes=chunk) == stats
        )
        assert fast.read_bytes() == dst.read_bytes()
    except cleaning._NeedsExactPath:
        assert not fast.exists()
    assert stats.rows_in == len(rows)
    assert stats.rows_out + stats.dropped_nulls == stats.rows_in
    out = dst.read_bytes().decode()
    assert list(csv.reader(io.StringIO(out.removeprefix("\ufeff")))) == [header, *expect]
    # each kept row is the exact input bytes of that row
    first_line = text.split(ending, 1)[0] + ending
    assert out.startswith(first_line)
    assert out == first_line + "".join(_raw(r, ending) for r in expect)


def _raw(row, ending):
    buf = io.StringIO()
    csv.writer(buf, lineterminator=ending).writerow(row)
    return buf.getvalue()


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("dropna", ["any", "all", "none", ["Age", "Embarked"]])
def test_fast_path_matches_exact_path(tmp_path, ending, dropna):
    src = tmp_path / "big.csv"
    src.write_bytes(b"\xef\xbb\xbf" + to_csv(titanic_rows(3000, seed=4), ending))
    fast = cleaning._clean_fast(src, tmp_path / "fast.csv", target="Survived", dropna=dropna)
    exact = cleaning._clean_exact(src, tmp_path / "exact.csv", target="Survived", dropna=dropna)
    assert fast == exact
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "exact.csv").read_bytes()


@pytest.mark.parametrize(
    "text",
    [
        'a,b\n1,"x\ny"\n2,3\n',  # a quoted line break
        "a,b\n1,2\n\n3,4\n",  # a blank line
        'a,b\n1,"x\n',  # an open quote at the end
        'a,b\n1,2\nc"d,"x\n',  # an open quote after a literal one
        "a,b\n1,2\r3,4\n",  # a bare CR
        "a,b\r\n1,2\r\n\r\n3,4\r\n",  # a blank CRLF line
        'a,b\n1,2\n"x"y,3\n',  # a character after a closing quote
        'a,b\n"x,"y,3\n1,2\n',  # ... after a comma inside quotes
        'a,b\n"x" ,3\n1,2\n',  # ... a space
        'a,b\n1,""x\n1,2\n',  # ... after an empty quoted field
        'a,b\n1,"x"""y\n1,2\n',  # ... after a doubled quote
        "a,\n1,2\n",  # a column without a name
    ],
)
def test_fast_path_hands_over_what_it_cannot_vouch_for(tmp_path, text):
    src = tmp_path / "odd.csv"
    src.write_text(text, newline="")
    for chunk in (4, 1 << 20):  # records cut at chunk boundaries, and whole
        with pytest.raises(cleaning._NeedsExactPath):
            cleaning._clean_fast(
                src, tmp_path / "o.csv", target=None, dropna="any", chunk_bytes=chunk
            )
        assert not (tmp_path / "o.csv").exists()


_piece = st.sampled_from(['"a"', '""', '"', "a", " ", ","])  # quotes placed well and not
_field = st.lists(_piece, max_size=4).map("".join)
_line = st.builds("{},{}{}".format, _field, _field, st.sampled_from(["\n", "\r\n"]))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(  # any characters, or lines of two fields made of quotes and letters
        st.text(alphabet='ab,"\r\n ', max_size=60),
        st.lists(_line, max_size=6).map("".join),
    ),
    chunk=st.integers(1, 40),
    dropna=st.sampled_from(["any", "all", "none"]),
)
def test_fast_path_never_disagrees_with_the_exact_one(tmp_path, body, chunk, dropna):
    """Whatever the bytes and wherever chunks end, the fast path hands over or agrees."""
    src, fast, exact = tmp_path / "f.csv", tmp_path / "fast.csv", tmp_path / "exact.csv"
    src.write_text("a,b\n" + body, newline="")
    for path in (fast, exact):
        path.unlink(missing_ok=True)
    _assert_fast_agrees(src, fast, exact, chunk=chunk, dropna=dropna)


def _assert_fast_agrees(src, fast, exact, *, chunk, dropna):
    """The fast path hands over, or accepts what the exact path accepts, with the same result."""
    try:
        expected = cleaning._clean_exact(src, exact, dropna=dropna)
    except UserError as exc:
        expected = exc
    try:
        got = cleaning._clean_fast(src, fast, target=None, dropna=dropna, chunk_bytes=chunk)
    except cleaning._NeedsExactPath:
        assert not fast.exists()
        return
    assert not isinstance(expected, UserError), f"the fast path accepts a file that {expected}"
    assert got == expected
    assert fast.read_bytes() == exact.read_bytes()


# Fields and header names, well-formed and not: quotes misplaced, unbalanced or inside
# unquoted fields, commas and line breaks inside quotes, blank names.
FIELDS = ["", "a", "NA", "1", "1", "x y", "x y", '"q"', '"q"', '"a,b"', '""', '"a""b"']
FIELDS += ['x"y', "5'10\"", '"x"y', '"x,"y', '"x" ', ' "x"', '"', '"""', '"a""', '"x\ny"']
NAMES = ["", " ", '""', "c0", 'c"x', '"c"x', '"c', '"c,d"']


@st.composite
def csv_files(draw) -> bytes:
    """CSV bytes that are often malformed: bad quoting, ragged rows, blank or odd names."""
    ncols = draw(st.integers(1, 3))
    header = [f"c{i}" for i in range(ncols)]
    if draw(st.booleans()):
        header[draw(st.integers(0, ncols - 1))] = draw(st.sampled_from(NAMES))
    width = st.one_of(st.just(ncols), st.just(ncols), st.just(ncols), st.integers(1, 4))
    rows = draw(
        st.lists(
            width.flatmap(lambda n: st.lists(st.sampled_from(FIELDS), min_size=n, max_size=n)),
            max_size=8,
        )
    )
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(header), *(",".join(row) for row in rows)]
    if draw(st.integers(0, 9)) == 0:  # a blank line, or a bare CR, somewhere
        lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(["", "1\r2"])))
    text = ending.join(lines) + draw(st.sampled_from([ending, ""]))
    return (draw(st.sampled_from(["", "\ufeff"])) + text).encode()


def _verdict(src, dst, **kwargs):
    """clean_csv's stats and output bytes, or its error (one line naming the file)."""
    dst.unlink(missing_ok=True)
    try:
        stats = clean_csv(src, dst, **kwargs)
    except UserError as exc:
        assert not dst.exists()
        assert str(src) in str(exc) and "\n" not in str(exc), exc
        return "rejected"
    return stats, dst.read_bytes()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=csv_files(),
    chunk=st.integers(1, 48),
    dropna=st.sampled_from(["any", "all", "none"]),
)
def test_acceptance_depends_on_the_file_alone(tmp_path, text, chunk, dropna):
    """Malformed or not, a file is accepted (with the same output) or rejected whatever the
    settings that choose the path: drop_columns naming no column forces the exact path."""
    src, dst = tmp_path / "m.csv", tmp_path / "m-out.csv"
    src.write_bytes(text)
    verdict = _verdict(src, dst, dropna=dropna)
    assert _verdict(src, dst, dropna=dropna, drop_columns=["absent"]) == verdict
    deduplicated = _verdict(src, dst, dropna=dropna, drop_duplicates=True)
    assert (deduplicated == "rejected") == (verdict == "rejected")
    fast, exact = tmp_path / "m-fast.csv", tmp_path / "m-exact.csv"
    for path in (fast, exact):
        path.unlink(missing_ok=True)
    _assert_fast_agrees(src, fast, exact, chunk=chunk, dropna=dropna)  # chunks ending anywhere


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_quotes_inside_unquoted_fields_stay_on_the_fast_path(tmp_path, chunk):
    """Literal quotes in unquoted fields are well-formed: the strict reader checks their lines
    and the fast path keeps them, as the exact path does."""
    text = 'id,height,note\n1,5\'10",x"y\n2,6\',"a ""b"""\n3,,z\n4,1"2"3,""\n'
    src = tmp_path / "lit.csv"
    src.write_text(text, newline="")
    fast = cleaning._clean_fast(
        src, tmp_path / "fast.csv", target=None, dropna="any", chunk_bytes=chunk
    )
    exact = cleaning._clean_exact(src, tmp_path / "exact.csv")
    assert fast == exact
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "exact.csv").read_bytes()
    assert (tmp_path / "fast.csv").read_text() == text.replace("3,,z\n", "").replace(
        '4,1"2"3,""\n', ""
    )


@pytest.mark.parametrize(
    "kwargs", [{}, {"drop_duplicates": True}, {"drop_columns": ["absent"]}, {"dropna": "none"}]
)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a,b\n1,2\n"x"y,3\n', "line 3 is not well-formed CSV: ',' expected after '\"'"),
        ('a,b\n1,2\n3,"x,"y\n', "line 3 is not well-formed CSV"),
        ('a,b\n1,""x\n', "line 2 is not well-formed CSV"),
        ("a,,c\n1,2,3\n", "line 1: the header has no name for column 2;"),
        ("a, \n1,2\n", "line 1: the header has no name for column 2;"),
    ],
)
def test_malformed_quotes_and_unnamed_columns_fail_on_every_path(tmp_path, kwargs, text, message):
    with pytest.raises(UserError, match=message):
        run(tmp_path, text, **kwargs)


@pytest.mark.parametrize("chunk", [7, 100, 4096])
def test_fast_path_in_small_chunks_matches(tmp_path, chunk):
    src = tmp_path / "big.csv"
    src.write_bytes(to_csv(titanic_rows(400, seed=9), "\r\n"))
    fast = cleaning._clean_fast(
        src, tmp_path / "fast.csv", target="Survived", dropna="any", chunk_bytes=chunk
    )
    exact = cleaning._clean_exact(src, tmp_path / "exact.csv", target="Survived", dropna="any")
    assert fast == exact
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "exact.csv").read_bytes()


def test_na_values_are_pandas_defaults():
    from pandas._libs.parsers import STR_NA_VALUES

    assert set(STR_NA_VALUES) == NA_VALUES


def test_very_long_field_is_kept(tmp_path):
    long = "x" * (8 * 1024 * 1024)  # 8 MiB in one field
    data = f'id,text\n1,"{long}"\n2,\n'
    stats, out = run(tmp_path, data)
    assert out == f'id,text\n1,"{long}"\n' and stats.rows_out == 1
