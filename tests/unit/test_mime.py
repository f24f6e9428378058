"""Specification of sandbox.mime: which bytes get which MIME type and data URI."""

from __future__ import annotations

import bz2
import gzip
import io
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor

import magic
import pytest

from sandbox import mime
from sandbox.mime import detect_mime, to_data_uri

# --- Helpers that build minimal but realistic headers ------------------------


def riff(form: bytes, first_chunk: bytes) -> bytes:
    body = form + first_chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    payload = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(payload)) + b"ftyp" + payload


def ebml(doctype: bytes) -> bytes:
    doctype_element = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    header = (
        b"\x42\x86\x81\x01"  # EBMLVersion 1
        b"\x42\xf7\x81\x01"  # EBMLReadVersion 1
        b"\x42\xf2\x81\x04"  # EBMLMaxIDLength 4
        b"\x42\xf3\x81\x08"  # EBMLMaxSizeLength 8
        + doctype_element
        + b"\x42\x87\x81\x04"  # DocTypeVersion 4
        + b"\x42\x85\x81\x02"  # DocTypeReadVersion 2
    )
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header


def bmp_header() -> bytes:
    file_header = b"BM" + struct.pack("<IHHI", 58, 0, 0, 54)
    info_header = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, 4, 0, 0, 0, 0)
    return file_header + info_header + b"\x00\x00\xff\x00"


def zip_archive(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.writestr(name, "<x/>" * 50)
    return buffer.getvalue()


PNG = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff"

# --- The compatibility contract ----------------------------------------------


@pytest.mark.parametrize(
    ("data", "uri"),
    [
        (bytes([72, 101, 108, 108, 111]), "data:text/plain;base64,SGVsbG8="),
        (bytes([65, 66]), "data:text/plain;base64,QUI="),
        (bytes([67]), "data:text/plain;base64,Qw=="),
        (PNG, "data:image/png;base64,iVBORw0KGgo="),
        (bytes([0xFF, 0xD8, 0xFF]), "data:image/jpeg;base64,/9j/"),
        (
            b'{"message":"Hello"}',
            "data:application/json;base64,eyJtZXNzYWdlIjoiSGVsbG8ifQ==",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="10"/></svg>',
            "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPjxjaXJjbGUgcj0iMTAiLz48L3N2Zz4=",
        ),
        (b"", "data:application/octet-stream;base64,"),
    ],
    ids=["hello", "two-letters", "one-letter", "png", "jpeg", "json", "svg", "empty"],
)
def test_data_uri_matches_the_compatibility_contract(data: bytes, uri: str) -> None:
    assert to_data_uri(data) == uri


def test_eight_byte_png_signature_is_image_png() -> None:
    assert detect_mime(PNG) == "image/png"


def test_three_byte_jpeg_signature_is_image_jpeg() -> None:
    assert detect_mime(b"\xff\xd8\xff") == "image/jpeg"


def test_empty_input_is_octet_stream() -> None:
    assert detect_mime(b"") == "application/octet-stream"


def test_data_uri_payload_is_padded_standard_base64() -> None:
    assert to_data_uri(b"\xfb\xff") == "data:application/octet-stream;base64,+/8="


# --- Signature table ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG + b"\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01", "image/jpeg"),
        (b"GIF87a\x01\x00\x01\x00\x00\x00\x00", "image/gif"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
        (riff(b"WEBP", b"VP8 \x00\x00\x00\x00"), "image/webp"),
        (bmp_header(), "image/bmp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
        (ftyp(b"avis", b"avis", b"msf1"), "image/avif"),
        (ftyp(b"mif1", b"mif1", b"avif"), "image/avif"),
        (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (ftyp(b"mp41", b"mp41"), "video/mp4"),
        (ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
        (ftyp(b"M4V ", b"M4V ", b"mp42"), "video/mp4"),
        (ebml(b"webm"), "video/webm"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "video/x-flv"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64\x00\x00", "audio/mpeg"),
        (b"\xff\xf3\x90\x64\x00\x00", "audio/mpeg"),
        (b"\xff\xf2\x90\x64\x00\x00", "audio/mpeg"),
        (b"OggS\x00\x02" + bytes(20), "audio/ogg"),
        (riff(b"WAVE", b"fmt \x10\x00\x00\x00"), "audio/wav"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (zip_archive("hello.txt"), "application/zip"),
        (zip_archive(), "application/zip"),
        (b"PK\x07\x08PK\x03\x04\x14\x00\x00\x00", "application/zip"),
        (OLE2, "application/x-ole-storage"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "application/gzip"),
        (bz2.compress(b"hello"), "application/x-bzip2"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24), "application/x-7z-compressed"),
        (b"Rar!\x1a\x07\x00\xcf\x90\x73\x00\x00", "application/vnd.rar"),
        (b"Rar!\x1a\x07\x01\x00\x33\x92\xb5\xe5", "application/vnd.rar"),
    ],
    ids=[
        "png",
        "jpeg-jfif",
        "gif87a",
        "gif89a",
        "webp",
        "bmp",
        "tiff-little-endian",
        "tiff-big-endian",
        "avif",
        "avif-sequence",
        "avif-as-compatible-brand",
        "mp4-isom",
        "mp4-mp41",
        "mp4-mp42",
        "mp4-m4v",
        "webm",
        "flv",
        "mp3-id3",
        "mp3-frame-sync-fffb",
        "mp3-frame-sync-fff3",
        "mp3-frame-sync-fff2",
        "ogg",
        "wav",
        "pdf",
        "zip",
        "zip-empty-archive",
        "zip-spanned",
        "ole2",
        "gzip",
        "bzip2",
        "7z",
        "rar4",
        "rar5",
    ],
)
def test_signature_table_identifies_format(data: bytes, mime: str) -> None:
    assert detect_mime(data) == mime


def test_gzip_from_python_gzip_module_is_application_gzip() -> None:
    assert detect_mime(gzip.compress(b"hello world")) == "application/gzip"


def test_empty_bzip2_stream_is_application_x_bzip2() -> None:
    assert detect_mime(bz2.compress(b"")) == "application/x-bzip2"


@pytest.mark.parametrize(
    ("part", "mime"),
    [
        (
            "word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "xl/workbook.xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            "ppt/presentation.xml",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ],
    ids=["docx", "xlsx", "pptx"],
)
def test_office_open_xml_zip_is_named_by_its_parts(part: str, mime: str) -> None:
    data = zip_archive("[Content_Types].xml", "_rels/.rels", part)
    assert detect_mime(data) == mime


def test_office_part_found_in_central_directory_after_large_first_entries() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("media/big.bin", bytes(20_000))
        archive.writestr("word/document.xml", "<w:document/>")
    assert detect_mime(buffer.getvalue()) == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )


def test_matroska_doctype_is_video_x_matroska_not_webm() -> None:
    assert detect_mime(ebml(b"matroska")) == "video/x-matroska"


@pytest.mark.parametrize("data", [b"BM", b"BMW", b"BMW drives fast on the road"], ids=repr)
def test_text_starting_with_bm_is_not_bmp(data: bytes) -> None:
    assert detect_mime(data) == "text/plain"


@pytest.mark.parametrize(
    "data",
    [b"ID3", b"ID3 tags are metadata", b"BZh9 is a bzip2 level", b"OggS", b"RIFF"],
    ids=repr,
)
def test_text_resembling_a_signature_stays_text_plain(data: bytes) -> None:
    assert detect_mime(data) == "text/plain"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    ],
    ids=["heic", "quicktime"],
)
def test_other_ftyp_brands_keep_libmagic_answer(data: bytes, mime: str) -> None:
    assert detect_mime(data) == mime


# --- Text analysis -----------------------------------------------------------


def test_svg_with_xml_declaration_is_image_svg() -> None:
    data = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    )
    assert detect_mime(data) == "image/svg+xml"


def test_svg_after_doctype_and_comment_is_image_svg() -> None:
    data = (
        b'<?xml version="1.0"?>\n'
        b"<!-- generated by a plotting library -->\n"
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        b"<svg><rect width='1' height='1'/></svg>\n"
    )
    assert detect_mime(data) == "image/svg+xml"


def test_svg_after_bom_and_whitespace_is_image_svg() -> None:
    assert detect_mime("\ufeff\n  <svg></svg>".encode()) == "image/svg+xml"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body>hi</body></html>",
        b"<!doctype HTML>\n<title>x</title>",
        b"<html lang='en'><p>hi</p></html>",
        b"<HTML><BODY>shouting</BODY></HTML>",
        b"<head><meta charset='utf-8'></head>",
        b"<body><p>fragment</p></body>",
        b"\n\n   <html>",
    ],
    ids=repr,
)
def test_html_document_is_text_html(data: bytes) -> None:
    assert detect_mime(data) == "text/html"


def test_html_with_inline_svg_is_text_html() -> None:
    data = b"<html><body><svg><circle r='1'/></svg></body></html>"
    assert detect_mime(data) == "text/html"


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><note><to>Tove</to></note>',
        b"<note><to>Tove</to><from>Jani</from></note>\n",
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>',
        b"<empty attr='1'/>",
        b'<?xml version="1.0"?><title>an XML root, not HTML</title>',
    ],
    ids=repr,
)
def test_xml_document_is_application_xml(data: bytes) -> None:
    assert detect_mime(data) == "application/xml"


def test_angle_brackets_in_prose_are_text_plain() -> None:
    assert detect_mime(b"if a <b and c> d then </e>") == "text/plain"


@pytest.mark.parametrize(
    "data",
    [b"[1, 2, 3]", b'[{"a": 1}, {"b": null}]', b"[]", b"{}", b'  \n{"k": "v"}\n'],
    ids=repr,
)
def test_json_object_or_array_is_application_json(data: bytes) -> None:
    assert detect_mime(data) == "application/json"


def test_json_with_utf8_bom_is_application_json() -> None:
    assert detect_mime(b'\xef\xbb\xbf{"a": 1}') == "application/json"


@pytest.mark.parametrize("data", [b'"hi"', b"123", b"true", b"null", b"1.5e3", b"C"], ids=repr)
def test_json_scalar_is_text_plain(data: bytes) -> None:
    assert detect_mime(data) == "text/plain"


def test_malformed_json_is_text_plain() -> None:
    assert detect_mime(b'{"unterminated": ') == "text/plain"


def test_deeply_nested_brackets_are_text_plain_without_crashing() -> None:
    assert detect_mime(b"[" * 100_000) == "text/plain"


def test_utf8_text_with_non_ascii_characters_is_text_plain() -> None:
    data = "Grüße, 世界! Ça va? 🙂\n\tŻółw\r\n".encode()
    assert detect_mime(data) == "text/plain"


def test_text_with_form_feed_tab_and_crlf_is_text_plain() -> None:
    assert detect_mime(b"page one\f\tpage two\r\n") == "text/plain"


# --- libmagic and fallback ---------------------------------------------------


def test_all_256_byte_values_are_octet_stream() -> None:
    assert detect_mime(bytes(range(256))) == "application/octet-stream"


def test_non_utf8_text_is_octet_stream() -> None:
    assert detect_mime("café au lait".encode("latin-1")) == "application/octet-stream"


def test_nul_bytes_make_text_octet_stream() -> None:
    assert detect_mime(b"abc\x00def") == "application/octet-stream"


def test_utf8_with_terminal_escape_codes_keeps_libmagic_text_plain() -> None:
    assert detect_mime(b"\x1b[31mred\x1b[0m\n") == "text/plain"


def test_detection_is_safe_from_many_threads() -> None:
    samples = [bytes(range(256)), ftyp(b"heic", b"mif1", b"heic")] * 50
    expected = [detect_mime(sample) for sample in samples]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(detect_mime, samples)) == expected


# --- Hostile and oversized input ---------------------------------------------
#
# Detection runs after the job has returned, outside its timeout and cgroup, so
# it must read a bounded sample and scan it linearly. Timings are not asserted
# (machines are noisy): the behaviour is pinned by what the answer depends on,
# and `timeout` is only a hang guard for what used to take minutes.

MIB = 1024 * 1024


def with_middle_replaced(data: bytes, filler: bytes) -> bytes:
    """Overwrite everything outside the head and tail windows with `filler`."""
    middle = len(data) - mime.SNIFF_BYTES - mime.TAIL_BYTES
    assert middle > 0, "the sample must be longer than both windows"
    return data[: mime.SNIFF_BYTES] + filler * middle + data[-mime.TAIL_BYTES :]


def office_zip_with_large_first_entry(size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("media/big.bin", b"\x00" * size)
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


LARGE_JSON = b"[" + b'{"id": 1, "name": "\xc3\xa9t\xc3\xa9"},' * 50_000 + b"{}]"
LARGE_XML = b'<feed xmlns="urn:x">' + b"<entry><title>t</title></entry>" * 30_000 + b"</feed>\n"
LARGE_TEXT = b"All work and no play makes Jack a dull boy.\n" * 50_000


@pytest.mark.timeout(10)
def test_doctype_followed_by_400_kb_of_letters_is_text_plain() -> None:
    assert detect_mime(b"<!doctype" + b"a" * 400_000) == "text/plain"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "data",
    [
        b"<!doctype" + b"a" * MIB,
        b"<!doctype [" + b"]" * MIB,
        b"<!doctype [>" * (MIB // 12) + b"]",
    ],
    ids=["doctype-letters", "doctype-subset-brackets", "many-doctypes-one-bracket"],
)
def test_hostile_prolog_is_scanned_linearly_even_without_the_sniff_window(
    monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    monkeypatch.setattr(mime, "SNIFF_BYTES", 64 * MIB)
    assert detect_mime(data) == "text/plain"


@pytest.mark.timeout(10)
def test_xml_declaration_followed_by_megabytes_of_attributes_is_application_xml() -> None:
    data = b'<?xml version="1.0"?><root ' + b'a="1" ' * 500_000
    assert detect_mime(data) == "application/xml"


@pytest.mark.timeout(10)
def test_svg_root_followed_by_megabytes_is_image_svg() -> None:
    assert detect_mime(b"<svg " + b"x" * (10 * MIB)) == "image/svg+xml"


@pytest.mark.timeout(10)
def test_ten_megabytes_of_spaces_is_text_plain() -> None:
    assert detect_mime(b" " * (10 * MIB)) == "text/plain"


@pytest.mark.timeout(10)
def test_unclosed_json_object_of_ten_megabytes_is_text_plain() -> None:
    assert detect_mime(b"{" + b'"a": 1, ' * (10 * MIB // 8)) == "text/plain"


@pytest.mark.timeout(10)
def test_balanced_bracket_bomb_longer_than_the_window_is_text_plain() -> None:
    assert detect_mime(b"[" * (5 * MIB) + b"]" * (5 * MIB)) == "text/plain"


def test_json_array_longer_than_the_window_is_application_json() -> None:
    assert len(LARGE_JSON) > mime.SNIFF_BYTES
    assert detect_mime(LARGE_JSON) == "application/json"


def test_json_string_running_past_the_window_is_application_json() -> None:
    assert detect_mime(b'["' + b"a" * (2 * mime.SNIFF_BYTES) + b'"]') == "application/json"


def test_prose_between_braces_longer_than_the_window_is_text_plain() -> None:
    data = b"{\\rtf1\\ansi " + b"Plain words in a rich text file. " * 5_000 + b"}"
    assert detect_mime(data) == "text/plain"


def test_xml_document_longer_than_the_window_is_application_xml() -> None:
    assert len(LARGE_XML) > mime.SNIFF_BYTES
    assert detect_mime(LARGE_XML) == "application/xml"


def test_html_document_longer_than_the_window_is_text_html() -> None:
    data = b"<!DOCTYPE html><html><body>" + b"<p>paragraph</p>" * 10_000 + b"</body></html>"
    assert detect_mime(data) == "text/html"


def test_utf8_text_cut_inside_a_character_by_the_windows_is_text_plain() -> None:
    data = "\u20ac".encode() * 40_000  # three bytes each: both windows split one
    assert len(data) % 3 == 0 and mime.SNIFF_BYTES % 3 != 0 and mime.TAIL_BYTES % 3 != 0
    assert detect_mime(data) == "text/plain"


def test_office_part_found_in_central_directory_of_a_multi_megabyte_zip() -> None:
    assert detect_mime(office_zip_with_large_first_entry(4 * MIB)) == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )


@pytest.mark.timeout(10)
def test_ftyp_box_claiming_more_than_the_window_is_video_mp4() -> None:
    data = b"\x00\xff\xff\xffftypisom\x00\x00\x00\x00" + b"isom" * (10 * MIB // 4)
    assert detect_mime(data) == "video/mp4"


@pytest.mark.parametrize(
    "data",
    [LARGE_JSON, LARGE_XML, LARGE_TEXT, office_zip_with_large_first_entry(MIB)],
    ids=["json", "xml", "text", "docx"],
)
def test_bytes_between_the_head_and_tail_windows_do_not_change_the_answer(data: bytes) -> None:
    assert detect_mime(with_middle_replaced(data, b"\xff")) == detect_mime(data)


def test_libmagic_is_given_at_most_the_sniff_window(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    from_buffer = magic.Magic.from_buffer

    def spy(self: magic.Magic, buffer: bytes) -> str:
        seen.append(len(buffer))
        return from_buffer(self, buffer)

    monkeypatch.setattr(magic.Magic, "from_buffer", spy)
    detect_mime(bytes(range(256)) * (10 * MIB // 256))
    assert seen == [mime.SNIFF_BYTES]
