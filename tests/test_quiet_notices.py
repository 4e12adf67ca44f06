"""Importing the kit silences the few notices of other libraries that a lesson would show for nothing
(course_lib.QUIET_NOTICES), precisely those messages: the same loggers' other messages still show."""

import logging
import subprocess
import sys

import course_lib


def test_bitsandbytes_says_nothing_about_its_missing_gpu_build_once_the_kit_is_imported():
    done = subprocess.run(
        [sys.executable, "-c", "import course_lib, bitsandbytes"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert course_lib.QUIET_NOTICES["bitsandbytes.cextension"] not in done.stderr, done.stderr


def test_only_the_named_notices_are_dropped(caplog):
    fonts = logging.getLogger("matplotlib.font_manager")
    with caplog.at_level(logging.WARNING):
        fonts.warning("findfont: Failed to find font weight %s for %s, now using %s.", "bold", "WenQuanYi", 400)
        fonts.warning("findfont: Font family %r not found.", "Noto Sans CJK SC")
        logging.getLogger("bitsandbytes.cextension").warning(
            "The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers, ..."
        )
        logging.getLogger("bitsandbytes.cextension").warning("Could not find the bitsandbytes CUDA binary at 'x'")
    assert [record.getMessage() for record in caplog.records] == [
        "findfont: Font family 'Noto Sans CJK SC' not found.",
        "Could not find the bitsandbytes CUDA binary at 'x'",
    ]
