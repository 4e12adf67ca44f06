"""The layering of course_lib stays true: a module imports only from its own layer or the layers below, theory
never reaches serving or training, nothing imports the command line or the notebook runner, and there are no
import circles. Read from the source (every import, also those inside functions), so it runs in a second.

The few imports that break a rule today are listed in KNOWN, each with why; a known one that is gone must be
taken off the list, so the list only shrinks (CONTRIBUTING.md, "Layers")."""

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "course_lib"

# Layer of each module, lowest first (a package's modules share its layer unless listed).
LAYERS = {
    0: [
        "i18n",
        "zh",
        "internvl_format",
        "config",
        "builds",
        "checkpoints",
        "fonts",
        "internvl2_2b",
        "plots",
        "precision",
        "probes",
        "question_format",
        "sample_pictures",
        "solutions",
        "source",
        "tables",
        "tiling",
    ],
    1: ["pixel_shuffle", "qformer_masks", "connectors", "nextgpt", "visionllm", "diagrams"],  # theory
    2: [
        "food_artwork",
        "food_gallery",
        "kit_food_set",
        "foodieqa",
        "vqa_data",
        "models",
        "tiny_internvl2",
        "evaluation",
        "probe_scores",
        "asking",
    ],
    3: ["artefacts", "finetune", "serving", "course_model"],
    4: [
        "__init__",
        "lessons",
        "exercises",
        "envcheck",
        "course_model_figures",
        "translation",
        "jupyter_lab",
        "site",
        "notebooks",
        "__main__",
    ],
}
THEORY = set(LAYERS[1])
ENTRY_POINTS = {"__main__", "notebooks"}  # only the command line itself may import these

# (importer, imported): why it is still here. Each is to be removed by the architecture work (issue 11).
KNOWN = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _modules() -> dict:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "remote_code" not in p.parts}


def _imports(name: str, path: Path, known: set) -> set:
    """The course_lib modules `name` imports (relative or absolute, at the top or in a function)."""
    package = name.split(".") if path.name == "__init__.py" and name != "__init__" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if alias.name.split(".")[0] == "course_lib"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = (node.module or "").removeprefix("course_lib").lstrip(".")
                if not (node.module or "").startswith("course_lib"):
                    continue
            targets = [
                f"{module}.{a.name}".strip(".") if f"{module}.{a.name}".strip(".") in known else module
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            target = target.removeprefix("course_lib").lstrip(".") if target.startswith("course_lib") else target
            while target and target not in known:
                target = target.rpartition(".")[0]
            if not name.startswith(f"{target}."):  # its own package (remote_code is left out above)
                found.add(target or "__init__")
    found.discard(name)
    return found


def _layer(name: str) -> int:
    for layer, names in LAYERS.items():
        if name in names or name.split(".")[0] in names:
            return layer
    raise AssertionError(f"course_lib.{name} has no layer in tests/test_layers.py LAYERS: add it where it belongs")


def _graph() -> dict:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer():
    for name in _graph():
        _layer(name)


def test_no_module_imports_upward_and_theory_stays_theory():
    broken = set()
    for name, imported in _graph().items():
        for other in imported:
            upward = _layer(other) > _layer(name)
            theory_reaches_out = name.split(".")[0] in THEORY and _layer(other) >= 2
            entry = other in ENTRY_POINTS and name != "__main__"
            if upward or theory_reaches_out or entry:
                broken.add((name, other))
    new = sorted(broken - set(KNOWN))
    assert not new, f"imports against the layering (see CONTRIBUTING.md): {new}"


def test_no_import_circles_but_the_known_ones():
    graph = {name: imported - {b for a, b in KNOWN if a == name} for name, imported in _graph().items()}
    circles = []

    def visit(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                circles.append(path[path.index(nxt) :] + [nxt])
            elif len(path) < 12:
                visit(nxt, path + [nxt])

    for start in graph:
        visit(start, [start])
    assert not circles, f"import circles: {sorted({' -> '.join(c) for c in circles})[:5]}"


def test_the_known_exceptions_are_still_there():
    graph = _graph()
    gone = [pair for pair in KNOWN if pair[1] not in graph.get(pair[0], set())]
    assert not gone, f"these imports are gone: take them off KNOWN in tests/test_layers.py: {gone}"


def test_every_import_of_the_kit_names_a_module_that_exists():
    """An import inside a function runs only when the function does: a relative one that points at no module
    (`from .tiling import ...` in a subpackage) would fail in front of a student, not here."""
    modules = _modules()
    missing = []
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" and name != "__init__" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                where = PACKAGE.joinpath(*module.split(".")) if module else PACKAGE
                if not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
                    missing.append(f"course_lib.{name} line {node.lineno}: {'.' * node.level}{node.module or ''}")
    assert not missing, f"imports of modules that do not exist: {missing}"
