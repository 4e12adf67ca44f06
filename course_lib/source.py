"""Show the few lines of the kit that a lesson calls, so the mechanism is on screen next to its result.

`show_source(fn)` prints a function's source (its docstring folded to its first line): the library stays the
tested source of truth, and the lesson shows exactly what ran. In Jupyter the code is shown highlighted."""

import inspect
import textwrap


def source_text(obj, docstring: bool = False) -> str:
    """The source of a function, method or class, dedented; without docstring, only its first line is kept."""
    try:
        text = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as error:
        raise TypeError(f"{obj!r} has no Python source to show ({error})") from None
    doc = inspect.getdoc(obj)
    if doc and not docstring and "\n" in doc.strip():
        lines = text.splitlines()
        opening = next((i for i, line in enumerate(lines) if line.strip().startswith(('"""', "'''"))), None)
        if opening is not None:
            quote = lines[opening].strip()[:3]
            closing = next(
                (i for i in range(opening, len(lines)) if lines[i].rstrip().endswith(quote) and i > opening), None
            )
            if closing is not None:
                indent = lines[opening][: len(lines[opening]) - len(lines[opening].lstrip())]
                first = doc.strip().splitlines()[0]
                text = "\n".join(lines[:opening] + [f'{indent}"""{first} (...)"""'] + lines[closing + 1 :]) + "\n"
    return text


def show_source(obj, docstring: bool = False):
    """Display obj's source: highlighted in Jupyter, printed elsewhere."""
    text = source_text(obj, docstring)
    try:
        from IPython import get_ipython
        from IPython.display import Code, display

        if get_ipython() is not None:
            display(Code(text, language="python"))
            return None
    except ImportError:
        pass
    print(text, end="")
    return None
