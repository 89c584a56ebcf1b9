"""Image files: the pixel limit is read from the header, before anything decodes the file."""

from __future__ import annotations

import struct
import zlib

import cv2
import pytest

from pi_facegate.cli import main
from pi_facegate.exc import ImageError
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.images import MAX_IMAGE_PIXELS, header_size, load_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (a decompression bomb's header, tiny on disk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_header_only(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


@pytest.mark.parametrize(
    "data",
    [
        png_header_only(30000, 30000),
        jpeg_header_only(20000, 20000),
        b"GIF89a" + struct.pack("<HH", 10000, 10000) + b"\0" * 20,
        b"BM" + b"\0" * 16 + struct.pack("<ii", 10000, -10000) + b"\0" * 30,
    ],
    ids=["png", "jpeg", "gif", "bmp"],
)
def test_an_image_over_the_limit_is_refused_before_decoding(tmp_path, data):
    path = tmp_path / "huge.img"
    path.write_bytes(data)
    width, height = header_size(data)
    assert width * height > MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="megapixel limit"):
        load_image(path)


def test_header_sizes_agree_with_the_decoded_photos(facedata):
    photos = sorted((facedata / "face_recognition_examples" / "examples").glob("*.jp*g"))
    photos += sorted((facedata / "five_celebrity_faces").rglob("*.jpg"))[:20]
    photos += sorted((facedata / "no_face_and_multi_face_misc").rglob("*.png"))[:10]
    checked = 0
    for photo in photos:
        decoded = cv2.imread(str(photo))
        if decoded is None:
            continue
        assert header_size(photo.read_bytes()[:65536]) == (decoded.shape[1], decoded.shape[0])
        checked += 1
    assert checked >= 20


def test_enrolling_a_huge_image_is_a_clear_error_and_stores_nothing(tmp_path, capsys):
    photo = tmp_path / "huge.png"
    photo.write_bytes(png_header_only(30000, 30000))  # 873 KB like this once crashed enroll
    state = tmp_path / "state"
    assert main(["enroll", "Alice", str(photo), "--state-dir", str(state)]) == 1
    err = capsys.readouterr()
    assert "30000x30000 = 900 megapixels" in err.out + err.err
    if (state / "gallery.db").exists():
        with Gallery.open(state / "gallery.db", fingerprint=None, create=False) as gallery:
            assert gallery.people() == []
