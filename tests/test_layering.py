"""Every import in condense/ points down the layering of ARCHITECTURE.md, read from the source (no import run)."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "condense")
# Third-party packages a function may import lazily (optional or slow, needed by one code path only).
LAZY_ALLOWED = {"mlxtend", "sklearn", "PIL", "torchvision"}


def layer_table() -> dict[str, int]:
    """The table in ARCHITECTURE.md: rows "| n | `unit`, `unit` | ..." give each unit its layer."""
    table = {}
    text = open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8").read()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if m:
            for unit in re.findall(r"`([\w.]+)`", m.group(2)):
                table[unit] = int(m.group(1))
    return table


def modules() -> dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[name[:-9] if name.endswith(".__init__") else name] = path
    return found


def unit(module: str) -> str:
    """``condense.evaluation.grid`` -> ``evaluation``; ``condense.io`` -> ``io``; ``condense`` -> ``condense``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(module: str, path: str, mods: dict[str, str]):
    """(target module, line, inside a function) for every import in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for t in targets:
            yield t, node.lineno, id(node) in in_function


def test_every_module_has_a_layer():
    table = layer_table()
    missing = sorted({unit(m) for m in modules()} - set(table))
    assert not missing, f"modules without a layer in ARCHITECTURE.md: {missing}"


def test_every_import_points_down_and_none_hides_in_a_function():
    table, mods = layer_table(), modules()
    wrong = []
    for module, path in mods.items():
        src = unit(module)
        for target, line, lazy in imports(module, path, mods):
            top = target.split(".")[0]
            if top == "condense":
                dst = unit(target)
                if lazy:
                    wrong.append(f"{module}:{line} imports {target} inside a function")
                elif dst != src and not (dst == "condense" and src == "condense") and table[dst] >= table[src]:
                    wrong.append(f"{module}:{line} imports {target} (layer {table[dst]} is not below {table[src]})")
            elif lazy and top not in LAZY_ALLOWED:
                wrong.append(f"{module}:{line} imports {target} inside a function (not in the lazy list)")
    assert not wrong, "\n".join(dict.fromkeys(wrong))


def test_no_import_cycle():
    mods = modules()
    edges = {m: {t for t, _, _ in imports(m, p, mods) if t in mods and t != m and not mods[t].endswith("__init__.py")}
             for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in edges.get(m, ()):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in mods:
        if m not in state:
            visit(m, [m])


def test_docstrings_cite_nothing_outside_the_repository():
    hits = [f"{m}: {w}" for m, p in modules().items() for w in ("METHODS.md", "DESIGN.md")
            if w in open(p, encoding="utf-8").read()]
    assert not hits, hits
