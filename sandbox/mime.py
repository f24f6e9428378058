"""MIME detection for the bytes a sandboxed program hands back.

Results are shown to clients as ``data:`` URIs, so a wrong type is visible
(a browser will refuse to render a PNG labelled ``image/x-tga``). Detection
therefore runs from most to least trustworthy evidence:

1. A table of magic numbers. It comes first because libmagic misjudges short
   buffers (three bytes of JPEG, an eight-byte PNG signature) and because
   these checks are cheap and exact.
2. Text analysis, for bytes that are clean UTF-8. libmagic only says
   ``text/plain`` here, while clients need JSON, SVG, HTML and XML told apart.
3. libmagic, for the long tail of binary formats that the table leaves out,
   with its guesses that are known to fire on random bytes thrown away.
4. ``application/octet-stream``, which makes no claim at all.

Detection runs in the worker after the job has returned, outside the job's
timeout and cgroup, on results of up to ``Limits.max_result_bytes``. So it reads
a bounded sample (the first ``SNIFF_BYTES`` and the last ``TAIL_BYTES``) and
every scan of that sample is linear: no pattern has a quantifier that gives
characters back to retry them, and the markup prolog is walked forwards with
searches that each stop at their first hit.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import threading
from collections.abc import Callable

import magic

__all__ = ["detect_mime", "to_data_uri"]

OCTET_STREAM = "application/octet-stream"

SNIFF_BYTES = 64 * 1024
"""How many leading bytes detection reads; the rest of a long result is not looked at.

Results reach 10 MiB, and detection is not covered by the job's timeout, so its
cost must not grow with the result. 64 KiB holds every signature in the table
and the offsets libmagic's rules commonly probe (ISO 9660 at 32 KiB), a markup
prolog and root element, and enough JSON to judge it; the slowest text to
classify (a window full of tiny prolog items) takes a few milliseconds.
"""

TAIL_BYTES = 64 * 1024
"""How many trailing bytes detection may also read.

Some evidence sits at the end: a ZIP's central directory names every part
(Office files whose first entries are large), and a long XML or JSON text is
only recognised if it ends with its root's closing tag or bracket.
"""

# --- 1. Signature table ------------------------------------------------------

# Plain "starts with" signatures. Where a short prefix could also begin
# ordinary text, the prefix is extended by a byte that text cannot contain
# (``OggS`` is always followed by a NUL version byte).
_PREFIX_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"FLV\x01", "video/x-flv"),
    # MPEG-1 Layer III frame sync without an ID3 tag in front.
    (b"\xff\xfb", "audio/mpeg"),
    (b"\xff\xf3", "audio/mpeg"),
    (b"\xff\xf2", "audio/mpeg"),
    (b"OggS\x00", "audio/ogg"),
    (b"%PDF-", "application/pdf"),
    # OLE2 is a container shared by .doc, .xls, .ppt, .msg and .msi, so naming
    # one of them would be wrong for the rest: report the container itself.
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    # Covers RAR 1.5-4 (then \x00) and RAR 5 (then \x01\x00).
    (b"Rar!\x1a\x07", "application/vnd.rar"),
)

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# HEIF images may declare a generic major brand and list avif as compatible.
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
# Only brands known to mean MP4 video; other ftyp files (HEIC, QuickTime,
# 3GP, M4A) are left to libmagic, which names them better than video/mp4.
_MP4_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso3",
        b"iso4",
        b"iso5",
        b"iso6",
        b"mp41",
        b"mp42",
        b"avc1",
        b"dash",
        b"mmp4",
        b"MSNV",
        b"M4V ",
        b"M4VH",
        b"M4VP",
        b"F4V ",
    }
)

_OOXML_TYPES: dict[bytes, str] = {
    b"word": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"xl": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"ppt": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# A part name sits 30 bytes into a local file header and 46 bytes into a
# central directory entry. Anchoring on the header avoids matching "xl/" by
# chance inside compressed data.
_OOXML_PART = re.compile(
    rb"(?:PK\x03\x04.{26}|PK\x01\x02.{42})(word|xl|ppt)/",
    re.DOTALL,
)
# Office writers put their parts near the start; the central directory at the
# end (the TAIL_BYTES window) lists every name, which covers archives whose
# first entries are large.
_ZIP_HEAD_SCAN = 8 * 1024

_BZIP2_BLOCK_MAGICS = (b"1AY&SY", b"\x17rE8P\x90")  # first block / empty stream
_EBML_HEADER_SCAN = 64


def _riff(data: bytes) -> str | None:
    """RIFF names its payload at offset 8; only WebP and WAV are claimed."""
    if data[:4] != b"RIFF":
        return None
    return {b"WEBP": "image/webp", b"WAVE": "audio/wav"}.get(data[8:12])


def _iso_bmff(data: bytes) -> str | None:
    """Read the ftyp box: the major brand decides, compatible brands for AVIF."""
    # A leading NUL (ftyp boxes are far below 16 MiB) keeps text out.
    if len(data) < 12 or data[0] != 0 or data[4:8] != b"ftyp":
        return None
    major = data[8:12]
    box_size = int.from_bytes(data[:4], "big")
    end = min(box_size, len(data)) if box_size >= 16 else len(data)
    compatible = {data[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS or (major in _HEIF_GENERIC_BRANDS and compatible & _AVIF_BRANDS):
        return "image/avif"
    if major in _MP4_BRANDS:
        return "video/mp4"
    return None


def _ebml(data: bytes) -> str | None:
    """EBML is shared by WebM and Matroska; the DocType tells them apart."""
    if data[:4] != b"\x1a\x45\xdf\xa3":
        return None
    if b"matroska" in data[:_EBML_HEADER_SCAN]:
        return "video/x-matroska"
    return "video/webm"


def _zip(head: bytes, tail: bytes) -> str | None:
    """Office Open XML files are zips; their part names reveal which one."""
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return None
    for window in (head[:_ZIP_HEAD_SCAN], tail):
        found = _OOXML_PART.search(window)
        if found:
            return _OOXML_TYPES[found.group(1)]
    return "application/zip"


def _bmp(data: bytes) -> str | None:
    """Accept "BM" only with a full 14-byte file header whose reserved bytes are 0.

    "BM" alone is too likely to be text ("BMW", "BMI"); the zero reserved
    fields at offsets 6-9 are mandatory in real bitmaps and never occur in text.
    """
    if len(data) >= 14 and data[:2] == b"BM" and data[6:10] == bytes(4):
        return "image/bmp"
    return None


def _id3(data: bytes) -> str | None:
    """An ID3v2 tag needs its major version (2-4) after "ID3", not just the word."""
    if len(data) >= 4 and data[:3] == b"ID3" and data[3] in (2, 3, 4):
        return "audio/mpeg"
    return None


def _bzip2(data: bytes) -> str | None:
    """Require the block magic too: "BZh" plus a level digit is plausible text."""
    if (
        data[:3] == b"BZh"
        and data[3:4] in b"123456789"
        and len(data) >= 10
        and data[4:10] in _BZIP2_BLOCK_MAGICS
    ):
        return "application/x-bzip2"
    return None


def _prefix(data: bytes) -> str | None:
    for signature, mime in _PREFIX_SIGNATURES:
        if data.startswith(signature):
            return mime
    return None


_SIGNATURE_CHECKS: tuple[Callable[[bytes], str | None], ...] = (
    _prefix,
    _riff,
    _iso_bmff,
    _ebml,
    _bmp,
    _id3,
    _bzip2,
)


def _match_signature(head: bytes, tail: bytes) -> str | None:
    for check in _SIGNATURE_CHECKS:
        mime = check(head)
        if mime is not None:
            return mime
    # Last, as the only check that also needs the tail; no other check accepts "PK".
    return _zip(head, tail)


# --- 2. Text analysis --------------------------------------------------------

# C0 and C1 controls, DEL, but not \t \n \f \r: text containing them is more
# likely binary that happens to decode, so it is left to libmagic.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
# Possessive quantifiers (``*+``, ``++``) never give characters back, and each
# run stops at a character outside its class, so no match attempt rereads what
# it has read. (The old single prolog regex, `<!doctype[^>\[]*...[^>]*>`, retried
# the rest of the text once per character it gave back: quadratic.)
_SPACES = re.compile(r"\s*+")
_DOCTYPE_OPEN = re.compile(r"<!doctype", re.IGNORECASE)
_DOCTYPE_STOP = re.compile(r"[>\[]")
_HTML_DOCTYPE = re.compile(r"<!doctype\s++html\b", re.IGNORECASE)
_SVG_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*+:)?svg(?=[\s/>]|\Z)")
_XHTML_ROOT = re.compile(r"<html(?=[\s/>]|\Z)", re.IGNORECASE)
# Tags that open HTML documents or fragments but rarely an XML document.
_HTML_ROOT = re.compile(
    r"<(?:html|head|body|title|meta|link|script|style|div|p|iframe)(?=[\s/>]|\Z)",
    re.IGNORECASE,
)
_XML_ROOT = re.compile(r"<([A-Za-z_][\w.:-]*+)(?=[\s/>])")
# The longest JSON token a cut can leave unfinished, "-Infinity" less one
# character; a parse of a cut-off head that fails this close to its end failed
# for want of input, not because of bad JSON.
_JSON_CUT_TOKEN = len("-Infinity") - 1


def _decode_head(head: bytes, complete: bool) -> str | None:
    """Strict UTF-8; a head cut off by SNIFF_BYTES may end inside a character,
    which is dropped rather than taken for bad UTF-8."""
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return None


def _decode_tail(tail: bytes) -> str | None:
    """Strict UTF-8 for a window that may start inside a character."""
    start = 0
    while start < min(3, len(tail)) and 0x80 <= tail[start] < 0xC0:
        start += 1  # continuation bytes of a character that began before the window
    try:
        return tail[start:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _prolog_end(text: str) -> int:
    """Where the root element may start: past whitespace, the XML declaration,
    processing instructions, comments and a doctype (with internal subset).

    Each search starts where the previous item ended and stops at its first hit,
    so a well-formed prolog is read once. A search that runs to the end and
    fails either ends the prolog or, for an internal subset's closing "]", is
    remembered, because it would fail again for every later doctype.
    """
    pos = 0
    subset_can_close = True
    while True:
        spaces = _SPACES.match(text, pos)
        pos = spaces.end() if spaces else pos
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            if end == -1:
                return pos
            pos = end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end == -1:
                return pos
            pos = end + 3
        elif doctype := _DOCTYPE_OPEN.match(text, pos):
            stop = _DOCTYPE_STOP.search(text, doctype.end())
            if stop is None:
                return pos
            end = -1
            if stop.group() == "[" and subset_can_close:
                # The internal subset ends at its first "]"; the doctype at the
                # first ">" after that.
                close = text.find("]", stop.end())
                end = text.find(">", close + 1) if close != -1 else -1
                subset_can_close = end != -1
            if end == -1:
                end = text.find(">", stop.start())  # no closable subset: the first ">"
                if end == -1:
                    return pos
            pos = end + 1
        else:
            return pos


def _looks_like_xml_element(body: str, ending: str, complete: bool) -> bool:
    """True for ``<name ...>...</name>`` or a lone ``<name .../>``.

    ``ending`` is the text's last part: the body itself when the whole text was
    read, the TAIL_BYTES window otherwise.
    """
    root = _XML_ROOT.match(body)
    if root is None:
        return False
    name = root.group(1)
    ending = ending.rstrip()
    if ending.endswith(">") and ending[:-1].rstrip().endswith("</" + name):
        return True
    if not complete:
        return False  # a single tag longer than SNIFF_BYTES is not worth a guess
    body = body.rstrip()
    attributes = body[root.end() : -2]
    return body.endswith("/>") and "<" not in attributes and ">" not in attributes


def _is_json_container(head: str, ending: str, complete: bool) -> bool:
    """Only objects and arrays count: "C", "123" or "true" are valid JSON too,
    but callers expect plain text for those.

    A text longer than SNIFF_BYTES counts if it ends with the matching bracket
    and its head is valid JSON as far as it goes.
    """
    opener = head[:1]
    if opener not in ("{", "["):
        return False
    if not complete and not ending.rstrip().endswith("}" if opener == "{" else "]"):
        return False
    try:
        value = json.loads(head)
    except RecursionError:  # "[[[[..." bombs
        return False
    except json.JSONDecodeError as error:
        if complete:
            return False
        return error.msg.startswith("Unterminated string") or (
            error.pos >= len(head) - _JSON_CUT_TOKEN
        )
    # A cut-off head that parses whole is followed by more than whitespace.
    return complete and isinstance(value, (dict, list))


def _classify_text(text: str, ending: str, complete: bool) -> str:
    """Name markup by its root element, so HTML with inline SVG stays HTML."""
    head = text.removeprefix("\ufeff").lstrip()
    prolog_end = _prolog_end(head)
    body = head[prolog_end:]
    if _SVG_ROOT.match(body):
        return "image/svg+xml"
    # Behind an XML declaration only <html> counts, since XML vocabularies
    # may well use <title> or <link> as their root.
    html_root = _XHTML_ROOT if head.startswith("<?xml") else _HTML_ROOT
    if _HTML_DOCTYPE.search(head, 0, prolog_end) or html_root.match(body):
        return "text/html"
    if head.startswith("<?xml") or _looks_like_xml_element(
        body, body if complete else ending, complete
    ):
        return "application/xml"
    if _is_json_container(head, ending, complete):
        return "application/json"
    return "text/plain"


# --- 3. libmagic -------------------------------------------------------------

# Answers that libmagic's weak rules produce for random bytes (found by feeding
# it os.urandom buffers); on data that reached this point they mean nothing.
_UNRELIABLE_LIBMAGIC = frozenset(
    {
        "application/x-empty",
        "inode/x-empty",
        "image/x-tga",
        "image/x-award-bioslogo",
        "audio/x-mp4a-latm",
        "application/x-arc",
        "application/x-commodore-basic",
        "application/x-dzip",
        "application/x-ibm-dsk",
        "application/x-ibm-rom",
        "application/x-lanalyzer",
        "application/x-tex-tfm",
        "application/vnd.hp-hpgl",
    }
)
# Answers libmagic also gives to random bytes, kept only with the real header.
_LIBMAGIC_NEEDS_PREFIX: dict[str, tuple[bytes, ...]] = {
    "application/x-dosexec": (b"MZ",),
    "application/zlib": (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"),
}

# One handle, created on first use (loading the magic database is slow) and
# serialised, because a libmagic cookie must not be used by two threads at once.
_magic_lock = threading.Lock()
_magic_handle: magic.Magic | None = None


def _libmagic(data: bytes) -> str | None:
    global _magic_handle
    try:
        with _magic_lock:
            if _magic_handle is None:
                _magic_handle = magic.Magic(mime=True)
            answer = _magic_handle.from_buffer(data)
    except magic.MagicException:
        return None
    return answer.split(";", 1)[0].strip().lower() or None


def _trust_libmagic(mime: str, data: bytes, is_utf8: bool) -> bool:
    if mime in _UNRELIABLE_LIBMAGIC or "x-unknown" in mime:
        return False
    # Undecodable bytes are not text, whatever libmagic's heuristics think.
    if mime.startswith("text/") and not is_utf8:
        return False
    required = _LIBMAGIC_NEEDS_PREFIX.get(mime)
    return required is None or data.startswith(required)


# --- Public API --------------------------------------------------------------


def detect_mime(data: bytes) -> str:
    """Return the MIME type of ``data``, or application/octet-stream if unsure."""
    if not data:
        return OCTET_STREAM
    # The only reads of `data`: everything below sees these two bounded windows.
    head = data[:SNIFF_BYTES]
    tail = data[-TAIL_BYTES:]
    mime = _match_signature(head, tail)
    if mime is not None:
        return mime
    complete = len(data) <= SNIFF_BYTES
    text = _decode_head(head, complete)
    ending = text if complete else _decode_tail(tail)
    is_utf8 = text is not None and ending is not None
    if is_utf8 and not (_CONTROL_CHARS.search(text) or _CONTROL_CHARS.search(ending)):
        return _classify_text(text, ending, complete)
    mime = _libmagic(head)
    if mime is not None and _trust_libmagic(mime, head, is_utf8=is_utf8):
        return mime
    return OCTET_STREAM


def to_data_uri(data: bytes) -> str:
    """Encode ``data`` as ``data:<mime>;base64,<payload>`` with padded base64."""
    payload = base64.b64encode(data).decode("ascii")
    return f"data:{detect_mime(data)};base64,{payload}"
