"""Reading a nominations CSV: the header and count first, then the rows in chunks."""

from __future__ import annotations

import pytest
from tpp_enrollment.service.import_rows import BadFileError, chunks, read

HEADER = "full_name,country,gender,profession,passport_number,session_id\r\n"


def nominations(rows: int, *, bom: bool = False) -> bytes:
    lines = [HEADER] + [
        f"Nominee {n},KE,female,expert,P{n},00000000-0000-0000-0000-{n:012d}\r\n"
        for n in range(rows)
    ]
    return ("\ufeff" if bom else "").encode() + "".join(lines).encode()


def test_rows_come_in_chunks_in_file_order_after_the_header_and_count() -> None:
    content = nominations(2500, bom=True)
    header, total = read(content)
    assert header[0] == "full_name"  # a spreadsheet's byte order mark is not part of it
    assert total == 2500
    parts = list(chunks(content, header, 1000))
    assert [len(p) for p in parts] == [1000, 1000, 500]
    assert [p[0]["passport_number"] for p in parts] == ["P0", "P1000", "P2000"]


def test_a_file_with_a_non_utf8_byte_far_down_is_refused_before_any_row() -> None:
    content = nominations(3000) + "Último,KE,female,expert,P9,x\r\n".encode("latin-1")
    with pytest.raises(BadFileError, match="not UTF-8"):
        read(content)


def test_missing_columns_are_named() -> None:
    with pytest.raises(BadFileError, match=r"missing column.*session_id"):
        read(b"full_name,country,gender,profession,passport_number\r\nA,KE,male,expert,P1\r\n")


def test_blank_lines_are_not_rows() -> None:
    content = nominations(2).replace(b"\r\nNominee 1", b"\r\n\r\nNominee 1")
    header, total = read(content)
    assert total == 2
    assert sum(len(p) for p in chunks(content, header, 10)) == 2
