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
