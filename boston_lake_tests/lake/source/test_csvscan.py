import csv
import io
import random

import pytest

from boston_lake.lake.source.csvscan import (
    MAX_LOCATIONS,
    BlockProfiler,
    CsvFormatError,
    iter_records,
    profile_file,
    profile_records,
    read_header,
    repair_encoding,
)


def records(data: bytes):
    return list(iter_records(io.BytesIO(data)))


def test_records_keep_their_bytes_and_offsets_and_quoted_newlines():
    data = b'a,b\r\n1,"two\nlines"\r\n\r\n3,"say ""hi"""\n'
    found = records(data)
    assert [r.number for r in found] == [0, 1, 2]
    assert found[1].data == b'1,"two\nlines"\r\n' and data[found[1].offset :].startswith(found[1].data)
    assert found[2].data == b'3,"say ""hi"""\n'
    assert b"".join(r.data for r in found) == data.replace(b"\r\n\r\n", b"\r\n")  # only the blank line is skipped


def test_an_unterminated_quote_is_one_last_record():
    found = records(b'a,b\n1,"never closed\n2,x\n')
    assert len(found) == 2 and found[1].data == b'1,"never closed\n2,x\n'


def test_profile_counts_rows_and_locates_invalid_utf8(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes("\ufeffa,b\n1,caf\u00e9\n".encode() + b"2,caf\xe9\n3,x")
    profile = profile_file(path)
    assert profile.header == ["a", "b"]  # BOM stripped
    assert profile.data_rows == 3
    assert profile.invalid_utf8_rows == 1
    assert profile.invalid_utf8_locations[0].number == 2


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(CsvFormatError, match="empty"):
        read_header(path)


def test_repair_decodes_only_the_bad_bytes_as_windows_1252(tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes("a,b\n1,\u201cok\u201d\n".encode() + b"2,caf\xe9 \x93quoted\x94\n")
    repaired = repair_encoding(source, target)
    assert [loc.number for loc in repaired] == [2]
    assert target.read_text(encoding="utf-8") == "a,b\n1,\u201cok\u201d\n2,caf\u00e9 \u201cquoted\u201d\n"


def _block_profile(data: bytes, block_bytes: int):
    profiler = BlockProfiler()
    for start in range(0, len(data), block_bytes):
        profiler.feed(data[start : start + block_bytes])
    return profiler.finish()


_PIECES = [
    b"a,b\r\n",
    b'1,"two\nlines"\r\n',
    b"\r\n",
    b"\n",
    b'3,"say ""hi"""\n',
    b"2,caf\xe9\n",
    "4,caf\u00e9\n".encode(),
    b"\xef\xbb\xbf",
    b'"',
    b"5,x",
    b"\r",
    b'6,"q\r\n"\n',
]


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 1 << 20])
def test_the_block_profiler_agrees_with_the_record_scanner(block_bytes):
    """Random files made of the pieces that trip CSV scanners (quoted newlines, CRLF, blank lines, a BOM,
    invalid UTF-8, unterminated quotes, no final line end), fed in blocks that cut records anywhere."""
    rng = random.Random(block_bytes)
    for _ in range(1500):
        data = b"".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))
        try:
            expected = profile_records(iter_records(io.BytesIO(data)))
        except (CsvFormatError, csv.Error) as error:
            with pytest.raises(type(error)):
                _block_profile(data, block_bytes)
            continue
        assert _block_profile(data, block_bytes) == expected, data


def test_the_block_profiler_caps_listed_locations_but_counts_every_invalid_row():
    data = b"a,b\n" + b"1,caf\xe9\n" * (MAX_LOCATIONS + 5)
    profile = _block_profile(data, 64)
    assert (profile.data_rows, profile.invalid_utf8_rows) == (MAX_LOCATIONS + 5, MAX_LOCATIONS + 5)
    assert [location.number for location in profile.invalid_utf8_locations] == list(range(1, MAX_LOCATIONS + 1))
    assert profile.invalid_utf8_locations[1].offset == len(b"a,b\n1,caf\xe9\n")
