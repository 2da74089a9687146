"""The clean baseline: bare pyarrow reads the CSV, drops rows with a null, writes it.

python pyarrow_clean.py SRC DST
"""

import sys
import time

import pyarrow.csv as pacsv
from workclock import report


def main(src: str, dst: str) -> None:
    started = time.perf_counter()
    options = pacsv.ConvertOptions(strings_can_be_null=True)
    pacsv.write_csv(pacsv.read_csv(src, convert_options=options).drop_null(), dst)
    report(started)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
