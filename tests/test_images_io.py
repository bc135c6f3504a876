"""Reading photos as people have them: EXIF orientation, ICC -> sRGB, CMYK, 16 bits, every format we list,
bad files as ImageReadError, and the size limit. All images are synthetic, written to tmp_path."""

import struct
import warnings
import zlib

import numpy as np
import pytest
import typer
from PIL import Image, ImageCms

from latentvar.cli._errors import user_errors
from latentvar.colorize import images
from latentvar.colorize.images import (
    ImageReadError,
    load_image_folder,
    read_image,
    read_image_rgb_uint8,
    to_rgba,
)

COLOURS = np.array(
    [[(230, 20, 20), (20, 200, 40), (30, 40, 220)], [(240, 240, 30), (250, 250, 250), (10, 10, 10)]]
)


@pytest.fixture(autouse=True)
def tiny_bands(monkeypatch):
    """Convert a row or two at a time, so every test also checks that the bands join up."""
    monkeypatch.setattr(images, "_BAND_BYTES", 200)


def blocks(side: int = 8) -> np.ndarray:
    """A 2×3 grid of distinct flat colours (16×24 RGB at side 8): asymmetric under every flip and turn."""
    return np.kron(COLOURS, np.ones((side, side, 1))).astype(np.uint8)


def block_colours(img: np.ndarray, side: int = 8) -> np.ndarray:
    """The colour at the centre of each side×side block."""
    return img[side // 2 :: side, side // 2 :: side, :3].astype(int)


# -- EXIF orientation ------------------------------------------------------------------------------------
UPRIGHT = {  # what a viewer shows for each EXIF orientation of stored pixels a
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # stored turned left: turn right (clockwise) to view
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def save_with_orientation(a: np.ndarray, path, orientation: int, **kw):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, exif=exif, **kw)


@pytest.mark.parametrize("orientation", [3, 6])
def test_exif_rotated_jpeg_comes_out_upright(tmp_path, orientation):
    a = blocks()
    save_with_orientation(a, tmp_path / "phone.jpg", orientation, quality=95)
    got = read_image(tmp_path / "phone.jpg")
    want = UPRIGHT[orientation](a)
    assert got.shape == (*want.shape[:2], 4)
    np.testing.assert_allclose(block_colours(got), block_colours(want), atol=12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_exactly_on_png(tmp_path, orientation):
    a = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    save_with_orientation(a, tmp_path / "o.png", orientation)
    np.testing.assert_array_equal(read_image_rgb_uint8(tmp_path / "o.png"), UPRIGHT[orientation](a))
    with Image.open(tmp_path / "o.png") as im:  # a PIL image in: turned too, and left as it was
        np.testing.assert_array_equal(to_rgba(im)[..., :3], UPRIGHT[orientation](a))
        assert im.size == (7, 5)


# -- ICC profiles -------------------------------------------------------------------------------------------
def s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


D50 = (0.9642, 1.0, 0.8249)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
SRGB_D50 = np.array(
    [SRGB.profile.red_colorant[0], SRGB.profile.green_colorant[0], SRGB.profile.blue_colorant[0]]
).T


def icc_profile(space: bytes, tags: dict[bytes, bytes], device_class: bytes = b"mntr") -> bytes:
    """A minimal ICC v2 profile (PCS XYZ, D50) with the given tags."""
    tags = {b"desc": b"desc" + bytes(4) + struct.pack(">I", 5) + b"test\0" + bytes(78), **tags}
    offset, table, data = 132 + 12 * len(tags), b"", b""
    for sig, body in tags.items():
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, device_class, space, b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(28) + b"".join(s15(v) for v in D50) + bytes(48)
    return header + struct.pack(">I", len(tags)) + table + data


def xyz_tag(xyz) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(s15(v) for v in xyz)


def linear_srgb_profile() -> bytes:
    """sRGB's primaries and white with a linear tone curve (gamma 1.0): linear light v maps to sRGB(v)."""
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 256) + bytes(2)
    tags = {b"wtpt": xyz_tag(D50), b"rTRC": curve, b"gTRC": curve, b"bTRC": curve}
    tags.update({sig: xyz_tag(col) for sig, col in zip((b"rXYZ", b"gXYZ", b"bXYZ"), SRGB_D50.T, strict=True)})
    return icc_profile(b"RGB ", tags)


def rotated_inks_cmyk_profile() -> bytes:
    """A CMYK profile (2-point lut16) whose C ink absorbs green, M blue and Y red: pure C looks magenta."""
    clut = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    linear_rgb = np.array([1 - y, 1 - c, 1 - m]) * (1 - k)
                    clut += [round(v * 32768) for v in SRGB_D50 @ linear_rgb]
    identity = b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramps = lambda n: struct.pack(f">{2 * n}H", *([0, 65535] * n))  # noqa: E731
    lut = b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
    lut += ramps(4) + struct.pack(f">{len(clut)}H", *clut) + ramps(3)
    return icc_profile(b"CMYK", {b"wtpt": xyz_tag(D50), b"A2B0": lut}, device_class=b"scnr")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    v = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(v * 255)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP", "JPEG"])
def test_non_srgb_profile_is_converted_to_srgb(tmp_path, fmt):
    a = blocks()
    a[:8, :8] = (128, 128, 128)
    a[:8, 8:16] = (64, 160, 255)
    kw = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(a).save(tmp_path / "linear.img", fmt, icc_profile=linear_srgb_profile(), **kw)
    got = block_colours(read_image_rgb_uint8(tmp_path / "linear.img"))
    want = srgb_encode(block_colours(a) / 255.0)  # linear light -> sRGB by the formula, not by LittleCMS
    np.testing.assert_allclose(got, want, atol=3 if fmt == "JPEG" else 2)
    assert got[0, 0, 0] > 180  # grey 128 in linear light is 188 in sRGB; ignoring the profile gives 128


def test_srgb_profile_leaves_pixels_alone_and_alpha_is_kept(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "srgb.png", icc_profile=SRGB.tobytes())
    got = read_image(tmp_path / "srgb.png")
    np.testing.assert_allclose(got[..., :3], rgba[..., :3], atol=1)
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "linear.png", icc_profile=linear_srgb_profile())
    got = read_image(tmp_path / "linear.png")  # converted colours, same alpha
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    np.testing.assert_allclose(got[..., :3], srgb_encode(rgba[..., :3] / 255.0), atol=2)


def test_grey_profile_is_converted_and_alpha_kept(tmp_path):
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 256) + bytes(2)  # linear-light grey
    grey_icc = icc_profile(b"GRAY", {b"wtpt": xyz_tag(D50), b"kTRC": curve})
    grey = np.array([[0, 64, 128, 255]], np.uint8)
    Image.fromarray(np.dstack([grey, [[255, 200, 100, 0]]]).astype(np.uint8), "LA").save(
        tmp_path / "grey.png", icc_profile=grey_icc
    )
    got = read_image_rgb_uint8(tmp_path / "grey.png")
    np.testing.assert_allclose(got[..., :3], np.repeat(srgb_encode(grey / 255.0)[..., None], 3, -1), atol=2)
    np.testing.assert_array_equal(got[..., 3], [[255, 200, 100, 0]])


def test_broken_profile_is_ignored(tmp_path):
    a = blocks()
    Image.fromarray(a).save(tmp_path / "bad_icc.png", icc_profile=b"not a profile at all" * 8)
    np.testing.assert_array_equal(read_image_rgb_uint8(tmp_path / "bad_icc.png"), a)


# -- CMYK ---------------------------------------------------------------------------------------------------
def cmyk_jpeg(path, cmyk, **kw):
    Image.new("CMYK", (16, 16), cmyk).save(path, quality=100, **kw)


@pytest.mark.parametrize("cmyk", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 128, 255, 0), (40, 80, 120, 60)])
def test_cmyk_jpeg_without_profile_matches_pillow(tmp_path, cmyk):
    cmyk_jpeg(tmp_path / "cmyk.jpg", cmyk)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK" and "adobe" in im.info  # stored inverted, Adobe style; Pillow undoes it
    got = read_image_rgb_uint8(tmp_path / "cmyk.jpg")
    want = np.asarray(Image.new("CMYK", (1, 1), cmyk).convert("RGB"))[0, 0]
    assert got.shape == (16, 16, 3)
    np.testing.assert_allclose(got.reshape(-1, 3), np.broadcast_to(want, (256, 3)), atol=3)


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [((255, 0, 0, 0), (255, 0, 255)), ((0, 255, 0, 0), (255, 255, 0)), ((0, 0, 0, 255), (0, 0, 0))],
)
def test_cmyk_jpeg_goes_through_its_profile(tmp_path, cmyk, rgb):
    cmyk_jpeg(tmp_path / "cmyk_icc.jpg", cmyk, icc_profile=rotated_inks_cmyk_profile())
    got = read_image(tmp_path / "cmyk_icc.jpg")  # Pillow's plain conversion would make pure C cyan
    np.testing.assert_allclose(got[8, 8], (*rgb, 255), atol=4)


# -- 16 bits ------------------------------------------------------------------------------------------------
GREY16 = np.array([[0, 129, 25700, 32768, 65279, 65535]], np.uint16)
GREY8 = np.array([[0, 1, 100, 128, 254, 255]], np.uint8)  # v * 255 / 65535, rounded (129 -> 1, not 0)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_is_rounded_to_8_bits(tmp_path, suffix):
    Image.fromarray(GREY16).save(tmp_path / f"grey16{suffix}")
    with Image.open(tmp_path / f"grey16{suffix}") as im:
        assert im.mode.startswith("I;16")
    got = read_image(tmp_path / f"grey16{suffix}")
    np.testing.assert_array_equal(got[..., :3], np.repeat(GREY8[..., None], 3, -1))
    assert (got[..., 3] == 255).all()


def test_32_bit_and_float_grey_images():
    np.testing.assert_array_equal(to_rgba(Image.fromarray(GREY16.astype(np.int32)))[..., 0], GREY8)
    small = np.array([[0, 7, 255]], np.int32)  # 8-bit values in an I image stay as they are
    np.testing.assert_array_equal(to_rgba(Image.fromarray(small))[..., 1], small)
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0, 2.0]], np.float32))
    np.testing.assert_array_equal(to_rgba(f)[..., 2], [[0, 128, 255, 255]])


def png_chunks(path, w: int, h: int, depth: int, colour_type: int, raw: bytes):
    """Write a PNG by hand (IHDR, one IDAT of zlib(``raw``), IEND)."""
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_16bit(path, arr: np.ndarray):
    """Write a 16-bit RGB (3 channels) or RGBA (4) PNG by hand; Pillow has no such mode to save from."""
    h, w, c = arr.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in arr)
    png_chunks(path, w, h, 16, {3: 2, 4: 6}[c], raw)


def tiff_16bit_rgb(path, arr: np.ndarray):
    """Write an uncompressed little-endian 16-bit RGB TIFF by hand."""
    h, w, _ = arr.shape
    pixels = arr.astype("<u2").tobytes()
    strip = 8 + 2 + 12 * 10 + 4 + 6  # after the header, the IFD and BitsPerSample's three values
    tags = {256: (3, w), 257: (3, h), 258: (3, strip - 6), 259: (3, 1), 262: (3, 2), 273: (4, strip)}
    tags |= {277: (3, 3), 278: (3, h), 279: (4, len(pixels)), 284: (3, 1)}
    entries = [(tag, kind, 3 if tag == 258 else 1, value) for tag, (kind, value) in tags.items()]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<3H", 16, 16, 16) + pixels)


def test_16_bit_rgb_png_and_tiff_scale_down(tmp_path):
    rgb16 = np.array(
        [[[65535, 32768, 0], [25700, 65535, 32768]], [[0, 0, 65535], [32768, 0, 257]]], np.uint16
    )
    rgb8 = np.array([[[255, 128, 0], [100, 255, 128]], [[0, 0, 255], [128, 0, 1]]], np.uint8)
    png_16bit(tmp_path / "rgb16.png", rgb16)
    tiff_16bit_rgb(tmp_path / "rgb16.tif", rgb16)
    for name in ("rgb16.png", "rgb16.tif"):
        np.testing.assert_array_equal(read_image_rgb_uint8(tmp_path / name), rgb8, err_msg=name)
    png_16bit(tmp_path / "rgba16.png", np.dstack([rgb16, [[32768, 65535], [0, 25700]]]).astype(np.uint16))
    want = np.dstack([rgb8, [[128, 255], [0, 100]]]).astype(np.uint8)
    np.testing.assert_array_equal(read_image_rgb_uint8(tmp_path / "rgba16.png"), want)


# -- formats ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("suffix", "kw", "atol"),
    [
        (".png", {}, 0),
        (".tif", {}, 0),
        (".tiff", {"compression": "tiff_lzw"}, 0),
        (".bmp", {}, 0),
        (".gif", {}, 0),
        (".webp", {"lossless": True}, 0),
        (".avif", {"quality": 95, "subsampling": "4:4:4"}, 10),
        (".jpg", {"quality": 95}, 10),
    ],
)
def test_formats_round_trip(tmp_path, suffix, kw, atol):
    a = blocks()
    Image.fromarray(a).save(tmp_path / f"x{suffix}", **kw)
    got = read_image_rgb_uint8(tmp_path / f"x{suffix}")
    assert got.shape == a.shape and got.dtype == np.uint8
    np.testing.assert_allclose(block_colours(got), COLOURS, atol=atol)
    assert suffix in images.IMAGE_SUFFIXES


def test_gif_first_frame_and_transparency_kept(tmp_path):
    a, b = blocks(), blocks()[::-1].copy()
    frames = [Image.fromarray(x).quantize(8) for x in (a, b)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    np.testing.assert_array_equal(block_colours(read_image_rgb_uint8(tmp_path / "anim.gif")), COLOURS)
    pal = Image.fromarray(a).quantize(8)
    pal.save(tmp_path / "clear.gif", transparency=int(np.asarray(pal)[0, 0]))
    got = read_image_rgb_uint8(tmp_path / "clear.gif")
    assert got.shape == (16, 24, 4) and (got[:8, :8, 3] == 0).all() and (got[8:, 8:, 3] == 255).all()


@pytest.mark.parametrize("mode", ["LA", "RGBA", "PA"])
def test_alpha_modes_keep_alpha(tmp_path, mode):
    alpha = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (16, 1))
    im = Image.fromarray(np.dstack([blocks(), alpha]), "RGBA").convert(mode)
    if mode == "PA":  # Pillow cannot save PA: the PIL-image path
        got = to_rgba(im)
    else:
        im.save(tmp_path / "a.png")
        got = read_image_rgb_uint8(tmp_path / "a.png")
    assert got.shape == (16, 24, 4)
    np.testing.assert_array_equal(got[..., 3], alpha)


# -- bad files and limits -----------------------------------------------------------------------------------
def write_bad(path, kind: str):
    Image.fromarray(blocks(32)).save(tmp := path.with_name("good" + path.suffix))
    good = tmp.read_bytes()
    content = {
        "empty": b"",
        "text": b"hello, I am a text file pretending to be an image\n",
        "truncated": good[: len(good) // 2],
        "corrupt": good[:20] + bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)),
    }[kind]
    path.write_bytes(content)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".gif"])
@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "corrupt"])
def test_bad_files_raise_image_read_error_naming_the_file(tmp_path, kind, suffix):
    write_bad(tmp_path / f"holiday_{kind}{suffix}", kind)
    pattern = rf"^images: cannot read '.*holiday_{kind}\{suffix}' as an image \(expected JPEG/PNG/TIFF/BMP/GIF/WebP/AVIF; .+\)$"
    with pytest.raises(ImageReadError, match=pattern):
        read_image(tmp_path / f"holiday_{kind}{suffix}")


def test_bad_file_on_the_command_line_is_error_exit_2(tmp_path, capsys):
    (tmp_path / "scan.jpg").write_text("not a jpeg")
    with pytest.raises(typer.Exit) as info, user_errors():
        read_image(tmp_path / "scan.jpg")
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: images: cannot read '") and "scan.jpg' as an image" in err
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.jpg")


def test_folder_reads_new_formats_and_skips_bad_files(tmp_path):
    for suffix in (".tif", ".bmp", ".gif", ".avif", ".png"):
        Image.fromarray(blocks()).save(tmp_path / f"ok{suffix}")
    write_bad(tmp_path / "bad.jpg", "truncated")
    (tmp_path / "good.jpg").unlink()
    got = load_image_folder(tmp_path, 16)
    assert sorted(p.name for p in got.paths) == ["ok.avif", "ok.bmp", "ok.gif", "ok.png", "ok.tif"]
    assert [(p.name, why.split(":")[0]) for p, why in got.skipped] == [("bad.jpg", "ImageReadError")]


def test_a_240_mpx_image_is_refused_by_its_header(tmp_path):
    png_chunks(tmp_path / "panorama.png", 20000, 12000, 8, 2, b"")  # a header only: nothing is decoded
    limit = r"20000×12000 = 240,000,000 pixels is over the limit of 200,000,000 pixels$"
    with pytest.raises(ImageReadError, match=r"^images: cannot read '.*panorama\.png': " + limit):
        read_image(tmp_path / "panorama.png")


def test_size_limit_refuses_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(blocks()).save(tmp_path / "poster.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 16 * 24)
    assert read_image(tmp_path / "poster.png").shape == (16, 24, 4)  # at the limit: read
    monkeypatch.setattr(images, "MAX_PIXELS", 16 * 24 - 1)
    with pytest.raises(
        ImageReadError,
        match=r"^images: cannot read '.*poster\.png': 24×16 = 384 pixels is over the limit of 383 pixels",
    ):
        read_image(tmp_path / "poster.png")
    # the size is refused before decoding, so before the truncation is seen
    write_bad(tmp_path / "huge_truncated.png", "truncated")
    with pytest.raises(ImageReadError, match=r"huge_truncated\.png': 96×64 = 6,144 pixels is over the limit"):
        read_image(tmp_path / "huge_truncated.png")


def test_pillow_bomb_guard_is_lifted_only_for_our_reads(tmp_path, monkeypatch):
    """As a 108 Mpx photo against Pillow's 89/179 Mpx guard: here a 384-pixel image against a guard of 100."""
    Image.fromarray(blocks()).save(tmp_path / "big.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        assert read_image_rgb_uint8(tmp_path / "big.jpg").shape == (16, 24, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored for other code
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.jpg")


def test_a_file_object_is_read_and_its_own_pixel_limit_holds():
    import io

    from latentvar.colorize.images import ImageTooLargeError

    buf = io.BytesIO()
    Image.fromarray(blocks()).save(buf, "PNG")
    assert np.array_equal(read_image_rgb_uint8(io.BytesIO(buf.getvalue())), blocks()[..., :3])
    with pytest.raises(
        ImageTooLargeError, match=r"^images: cannot read 'the upload': 24×16 = 384 pixels"
    ) as err:
        read_image_rgb_uint8(io.BytesIO(buf.getvalue()), max_pixels=383)
    assert (err.value.width, err.value.height) == (24, 16)
    with pytest.raises(ImageReadError, match=r"^images: cannot read 'the upload' as an image"):
        read_image_rgb_uint8(io.BytesIO(b"not an image"))
