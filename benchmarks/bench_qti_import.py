"""QTI import amplification (issue 18): work per upload byte, crafted archives vs a real export.

For each archive: its size, the uncompressed bytes the reader parses (a counting wrapper around
the real XML parser), the budget `item_bank.qti.archive_budget`, the peak memory traced while
reading (tracemalloc) and the wall time, and the outcome. The crafted cases are the security
review's: a ~10 KB zip whose manifest lists one highly compressible 4.9 MB file 1,500 (and 200)
times, and a ~10 KB zip with two distinct 4.9 MB members.

Usage: ``.venv/bin/python benchmarks/bench_qti_import.py``
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

from irt.io import FormatError
from item_bank import qti
from item_bank.shipped import read_shipped
from item_bank.transfer import read_bank_file, write_bank_file

BIG = 4_900_000


def _manifest(hrefs: list[str]) -> bytes:
    res = "".join(f'<resource identifier="R{k}" type="imsqti_item_xmlv2p1" href="{h}">'
                  f'<file href="{h}"/></resource>' for k, h in enumerate(hrefs))
    return (f'<?xml version="1.0"?><manifest xmlns="{qti.CP_NS}" identifier="M">'
            f"<organizations/><resources>{res}</resources></manifest>").encode()


def _big() -> bytes:
    head = f'<?xml version="1.0"?><assessmentItem xmlns="{qti.QTI_NS}" identifier="X"><!--'
    return head.encode() + b"a" * (BIG - len(head) - 24) + b"--></assessmentItem>"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def main() -> int:
    folder = Path(tempfile.mkdtemp())
    export = folder / "shipped.zip"
    write_bank_file(export, read_shipped())
    cases = {
        "1,500 references to one 4.9 MB member": _zip(
            {"imsmanifest.xml": _manifest(["x.xml"] * 1500), "x.xml": _big()}),
        "200 references to one 4.9 MB member": _zip(
            {"imsmanifest.xml": _manifest(["x.xml"] * 200), "x.xml": _big()}),
        "two distinct 4.9 MB members": _zip(
            {"imsmanifest.xml": _manifest(["a.xml", "b.xml"]), "a.xml": _big(), "b.xml": _big()}),
        "shipped bank export (224 items)": export.read_bytes(),
    }
    parsed: list[int] = []
    real = qti._parse

    def counting(name: str, data: bytes):  # type: ignore[no-untyped-def]
        parsed.append(len(data))
        return real(name, data)

    qti._parse = counting  # type: ignore[assignment]
    print("| archive | size | budget | parsed | peak traced memory | time | outcome |")
    print("|---|---|---|---|---|---|---|")
    for name, data in cases.items():
        path = folder / "case.zip"
        path.write_bytes(data)
        parsed.clear()
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            doc = read_bank_file(path, default_skill="databases")
            outcome = f"{len(doc.items)} items imported"
        except FormatError as exc:
            outcome = "refused: " + str(exc).split(": ", 1)[1][:60]
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"| {name} | {len(data):,} B | {qti.archive_budget(len(data)):,} B | "
              f"{sum(parsed):,} B in {len(parsed)} document(s) | {peak / 2**20:.1f} MiB | "
              f"{elapsed * 1000:.0f} ms | {outcome} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
