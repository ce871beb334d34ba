import codecs

import pytest
from django.utils import translation

from tayori.members import csvio


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_it_detects_shift_jis_with_japanese_headers(tmp_path):
    path = write(tmp_path, "sjis.csv", "メールアドレス,氏名\ntaro@example.jp,山田太郎\n".encode("cp932"))
    assert csvio.detect_encoding(path) == "cp932"
    assert csvio.read_header(path, "cp932") == ["メールアドレス", "氏名"]
    [record] = csvio.iter_records(path, "cp932")
    assert record.cells == ["taro@example.jp", "山田太郎"]


def test_it_detects_a_bom_and_strips_it_from_the_first_header(tmp_path):
    path = write(tmp_path, "bom.csv", codecs.BOM_UTF8 + "email,名前\na@example.jp,花子\n".encode())
    assert csvio.detect_encoding(path) == "utf-8-sig"
    assert csvio.read_header(path, "utf-8-sig") == ["email", "名前"]


def test_it_detects_plain_utf8(tmp_path):
    path = write(tmp_path, "utf8.csv", "email,名前\na@example.jp,花子\n".encode())
    assert csvio.detect_encoding(path) == "utf-8"


def test_it_checks_the_whole_file_not_a_sample(tmp_path):
    body = "email\n" + "a@example.jp\n" * 200_000
    path = write(tmp_path, "late.csv", body.encode() + "東京@example.jp\n".encode("cp932"))
    assert csvio.detect_encoding(path) == "cp932"


def test_an_override_that_does_not_decode_is_refused_with_the_byte(tmp_path):
    path = write(tmp_path, "sjis.csv", "氏名\n山田\n".encode("cp932"))
    with translation.override("en"), pytest.raises(csvio.UnreadableFile, match="byte 0"):
        csvio.resolve_encoding(path, "utf-8")
    assert csvio.resolve_encoding(path, "auto") == "cp932"


def test_an_override_is_obeyed_when_it_decodes(tmp_path):
    # ASCII decodes as all three; the operator's choice wins over detection.
    path = write(tmp_path, "ascii.csv", b"email\na@example.jp\n")
    assert csvio.resolve_encoding(path, "cp932") == "cp932"
    with pytest.raises(csvio.UnreadableFile):
        csvio.resolve_encoding(path, "latin-1")


def test_records_carry_their_line_counting_the_header_as_line_1(tmp_path):
    path = write(tmp_path, "lines.csv",
                 b'email,note\r\na@example.jp,x\r\n\r\nb@example.jp,"two\r\nlines"\r\nc@example.jp,y\r\n')
    records = list(csvio.iter_records(path, "utf-8"))
    assert [(r.line, r.cells[0]) for r in records] == [
        (2, "a@example.jp"), (4, "b@example.jp"), (6, "c@example.jp")]
    assert records[1].cells[1] == "two\r\nlines"
    assert csvio.count_records(path, "utf-8") == 3


def test_an_empty_file_is_unreadable(tmp_path):
    path = write(tmp_path, "empty.csv", b"\n\n")
    with pytest.raises(csvio.UnreadableFile):
        csvio.read_header(path, "utf-8")


@pytest.mark.parametrize("encoding", csvio.ENCODINGS)
def test_it_writes_each_encoding_readably(tmp_path, encoding):
    path = tmp_path / "out.csv"
    writer = csvio.write_rows(path, encoding, [["氏名", "メモ"], ["髙橋", "①～"]])
    assert writer.replaced_cells == 0
    assert csvio.detect_encoding(path) == encoding
    assert list(csvio.iter_records(path, encoding))[0].cells == ["髙橋", "①～"]


def test_cp932_replaces_what_it_cannot_carry_and_counts_cells(tmp_path):
    path = tmp_path / "out.csv"
    writer = csvio.write_rows(path, "cp932", [["name", "note"], ["𠮷野家", "😀 and 🍣"], ["ok", "ok"]])
    assert writer.replaced_cells == 2
    assert list(csvio.iter_records(path, "cp932"))[0].cells == ["?野家", "? and ?"]


def test_formulas_are_defused_but_numbers_and_phones_are_kept(tmp_path):
    assert csvio.defuse_formula("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert csvio.defuse_formula("@SUM(A1)") == "'@SUM(A1)"
    assert csvio.defuse_formula("+819012345678") == "+819012345678"
    assert csvio.defuse_formula("-12.5") == "-12.5"
