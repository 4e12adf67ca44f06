"""The small figures' helpers: numbers a reader can read, labels that do not squash the plot."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from course_lib.plots import bar_chart, readable_number, wrap_label  # noqa: E402


def test_numbers_are_written_for_people():
    assert readable_number(13312) == "13,312"  # not 1.33e+04
    assert readable_number(8192.0) == "8,192"
    assert readable_number(50.23) == "50.2"
    assert readable_number(0.0123) == "0.0123"


def test_long_labels_wrap_and_the_axes_keep_most_of_the_width():
    long = "serving environment (.venv-serving; 7.7 apparent, the rest hard links into .venv's files)"
    assert max(len(line) for line in wrap_label(long).splitlines()) <= 34
    fig = bar_chart({"free here": 50.0, long: 3.0, "tiny checkpoint": 0.01}, "Disk", unit="GiB", log=True)
    fig.canvas.draw()
    assert fig.axes[0].get_position().width > 0.5  # the bars, not the labels, get the figure
    assert [t.get_text() for t in fig.axes[0].texts] == [" 50 GiB", " 3 GiB", " 0.01 GiB"]
    plt.close(fig)


def test_the_figures_speak_the_lessons_language(monkeypatch):
    """Titles and axis labels come from course_lib/zh/plots.py under COURSE_LANG=zh, and stay English without."""
    import warnings

    from PIL import Image

    from course_lib.pixel_shuffle import draw_pixel_shuffle
    from course_lib.qformer_masks import FLOW_COLUMNS, FLOW_TICKS, plot_masks
    from course_lib.tiling import draw_tile_grid
    from course_lib.zh.plots import ZH

    # the information-flow grid's labels are FLOW_COLUMNS written out
    assert FLOW_TICKS == tuple(c.replace(" <- ", "\nchanges with\n") for c in FLOW_COLUMNS)

    def texts():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no CJK font on a test machine: glyphs missing
            masks = plot_masks(2, 3)
            shuffle = draw_pixel_shuffle(side=4)
            grid = draw_tile_grid(Image.new("RGB", (896, 448), "white"), max_num=4)
        found = {
            "mask title": masks.axes[0].get_title(),
            "mask x": masks.axes[0].get_xlabel(),
            "mask y": masks.axes[0].get_ylabel(),
            "mask suptitle": masks.get_suptitle(),
            "mask ticks": [t.get_text() for t in masks.axes[0].get_xticklabels()],
            "shuffle left": shuffle.axes[0].get_title(),
            "shuffle suptitle": shuffle.get_suptitle(),
            "grid left": grid.axes[0].get_title(),
            "grid thumbnail": grid.axes[1].get_title(),
        }
        for fig in (masks, shuffle, grid):
            plt.close(fig)
        return found

    english = {
        "mask title": "ITC\nimage-text contrastive (unimodal)",
        "mask x": "attended-to position (column)",
        "mask y": "attending position (row)",
        "mask suptitle": "BLIP-2 stage 1: Q-Former self-attention masks (row attends to column)",
        "mask ticks": ["queries\n(Q=2)", "text\n(T=3)"],
        "shuffle left": "16 patch tokens (C channels each)",
        "shuffle suptitle": "Pixel shuffle at scale 0.5 (ps_version v2)",
        "grid left": "896x448 -> grid 2x1 of 448-px tiles",
        "grid thumbnail": "thumbnail",
    }
    monkeypatch.setenv("COURSE_LANG", "en")
    assert texts() == english
    monkeypatch.setenv("COURSE_LANG", "zh")
    assert texts() == {
        "mask title": "ITC\n" + ZH["image-text contrastive (unimodal)"],
        "mask x": ZH["attended-to position (column)"],
        "mask y": ZH["attending position (row)"],
        "mask suptitle": ZH["BLIP-2 stage 1: Q-Former self-attention masks (row attends to column)"],
        "mask ticks": [ZH["queries\n(Q={n})"].format(n=2), ZH["text\n(T={n})"].format(n=3)],
        "shuffle left": ZH["{n} patch tokens (C channels each)"].format(n=16),
        "shuffle suptitle": ZH["Pixel shuffle at scale 0.5 (ps_version {version})"].format(version="v2"),
        "grid left": ZH["{width}x{height} -> grid {columns}x{rows} of {size}-px tiles"].format(
            width=896, height=448, columns=2, rows=1, size=448
        ),
        "grid thumbnail": ZH["thumbnail"],
    }
