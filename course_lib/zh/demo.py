"""Chinese for the kit's messages: demo (see course_lib/zh/__init__.py)."""

ZH = {}
