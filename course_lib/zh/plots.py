"""Chinese for the kit's messages: plots (see course_lib/zh/__init__.py)."""

ZH = {}
