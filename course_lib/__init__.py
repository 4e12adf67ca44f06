"""course_lib: the tested code behind the multimodal-LLM course notebooks."""

from .artefacts import begin
from .config import CourseConfigError, CourseSetup, resolve

__all__ = ["CourseConfigError", "CourseSetup", "begin", "resolve"]
