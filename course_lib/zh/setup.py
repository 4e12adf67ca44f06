"""Chinese for the kit's messages: setup (see course_lib/zh/__init__.py)."""

ZH = {}
