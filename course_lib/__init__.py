"""course_lib: the tested code behind the multimodal-LLM course notebooks."""

import logging

# Other libraries' notices that say nothing a student must act on, by the logger that writes them and how the
# message starts; their other messages still show. Set here, as every lesson's first cell imports the kit
# (`from course_lib import begin`) before anything imports those libraries, and a logger is one object per name:
# the library's own getLogger(__name__) gets it with the filter on.
QUIET_NOTICES = {
    # bitsandbytes 0.45, cextension.py get_native_library, at import (peft and XTuner import it) on a machine
    # without CUDA: the kit never asks it for 8-bit or GPU quantization there
    "bitsandbytes.cextension": "The installed version of bitsandbytes was compiled without GPU support.",
    # matplotlib font_manager.findfont, when a bold label is drawn in a CJK font without a bold face (WenQuanYi):
    # it draws the regular face, which reads fine
    "matplotlib.font_manager": "findfont: Failed to find font weight ",
}


class _DropNotice(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


for _logger, _start in QUIET_NOTICES.items():
    logging.getLogger(_logger).addFilter(_DropNotice(_start))

from .artefacts import begin  # noqa: E402
from .config import CourseConfigError, CourseSetup, resolve  # noqa: E402

__all__ = ["CourseConfigError", "CourseSetup", "begin", "resolve"]
