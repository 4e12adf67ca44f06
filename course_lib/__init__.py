"""course_lib: the tested code behind the multimodal-LLM course notebooks."""
from .config import CourseConfigError, CourseSetup, begin, resolve

__all__ = ["CourseConfigError", "CourseSetup", "begin", "resolve"]
