"""The font that lets matplotlib draw Chinese (its default, DejaVu Sans, has no CJK glyphs)."""

from functools import lru_cache
from typing import List, Optional


@lru_cache(maxsize=1)
def cjk_font() -> Optional[str]:
    """The family name of an installed font that matplotlib can use for Chinese, or None.

    matplotlib's default DejaVu Sans has no Chinese glyphs (they print as boxes). Debian's fonts-noto-cjk
    or fonts-wqy-microhei provide some; without one the plots use English dish names.
    """
    from matplotlib import font_manager

    found = _chinese_font(font_manager.fontManager.ttflist)
    if found is None:
        # matplotlib keeps its font list in a cache made the first time it ran; a font installed since
        # (`make test` installs one after `make env`) is not in it until it is added.
        known = {entry.fname for entry in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    font_manager.fontManager.addfont(path)
                except Exception:  # a font file matplotlib cannot read
                    continue
        found = _chinese_font(font_manager.fontManager.ttflist)
    return found


def _chinese_font(entries) -> Optional[str]:
    from matplotlib.ft2font import FT2Font

    for entry in entries:
        if "last resort" in entry.name.lower():  # matplotlib's placeholder font: one box per Unicode block
            continue
        try:
            charmap = FT2Font(entry.fname).get_charmap()
        except Exception:  # unreadable or unsupported font file
            continue
        if all(ord(c) in charmap for c in "饺子图菜"):
            return entry.name
    return None


def font_family() -> Optional[List[str]]:
    """matplotlib's font.family for Chinese labels: DejaVu Sans first, the CJK font for the glyphs it lacks;
    None without a CJK font. Explicit names, not "sans-serif": generic families are looked up when a figure
    is drawn, which may be after a temporary setting is gone."""
    family = cjk_font()
    return None if family is None else ["DejaVu Sans", family]


def use_cjk_font() -> Optional[str]:
    """Let every later figure draw Chinese (font_family). begin() calls it at the top of each lesson; returns
    the CJK font's name, or None when none is installed."""
    import matplotlib

    families = font_family()
    if families is not None:
        matplotlib.rcParams["font.family"] = families
    return cjk_font()
