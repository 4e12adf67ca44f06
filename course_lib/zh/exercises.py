"""Chinese for the kit's messages: exercises (see course_lib/zh/__init__.py)."""

ZH = {}
