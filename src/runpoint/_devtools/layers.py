"""Check runpoint's layering: ``python -m runpoint._devtools.layers`` (exit 1 and a list when broken).

The rules, read from the source (every import, at module level or inside functions,
``TYPE_CHECKING`` blocks excepted since they never run):

1. Packages form no cycle: if package A imports package B, B does not import A, directly
   or through others. A "package" is a first-level unit of ``runpoint``: a subpackage
   (``run``, ``store``...) or a top-level module (``errors``, ``handle``).
2. No module imports a private module (a name part starting with ``_``) of another
   package. ``runpoint._util`` and ``runpoint._version`` are the shared foundation and
   may be imported from anywhere.
3. ``runpoint.config`` imports nothing of runpoint but ``errors`` and ``_util``.
4. ``runpoint.diagnostics``, ``runpoint.sinks`` and ``runpoint.checkpoint`` never import
   the concrete ``Run`` (``runpoint.run.run``) or ``rp.init`` (``runpoint.run.start``):
   they see a run through ``runpoint.handle.RunHandle``.
5. Modules stay small: no module over ``MAX_MODULE_LINES`` lines and no function over
   ``MAX_FUNCTION_LINES`` lines of code (its docstring not counted) unless its first lines
   carry a ``# long:`` comment saying why.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = {"_util", "_version", "errors"}
CONFIG_MAY_IMPORT = {"config", "errors", "_util"}
NO_CONCRETE_RUN = {"diagnostics", "sinks", "checkpoint"}
CONCRETE_RUN = {"runpoint.run.run", "runpoint.run.start"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


@dataclass
class Module:
    name: str  # runpoint.run.writer
    path: Path
    imports: list[tuple[str, int]] = field(default_factory=list)  # (absolute module, line)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    # "from pkg import sub" imports the submodule when one exists
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if _exists(candidate) else base)
    return targets


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:]) if "." in module else Path()
    path = PACKAGE_ROOT / relative
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def load_modules() -> list[Module]:
    modules = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if "_devtools" in path.parts:
            continue
        name = _module_name(path)
        module = Module(name, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                targets = _resolve(node, name, path.name == "__init__.py")
            module.imports += [(t, node.lineno) for t in targets if t == "runpoint" or t.startswith("runpoint.")]
        modules.append(module)
    return modules


def unit(module: str) -> str:
    """The first-level part of ``runpoint.a.b``: ``a`` (``""`` for ``runpoint`` itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def _long_functions(module: Module) -> list[str]:
    lines = module.path.read_text(encoding="utf-8").splitlines()
    problems = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
            length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
            head = "\n".join(lines[node.lineno - 1: node.lineno + 3])
            if length > MAX_FUNCTION_LINES and "# long:" not in head:
                problems.append(f"{module.path.relative_to(PACKAGE_ROOT.parent)}:{node.lineno}: "
                                f"function {node.name} has {length} lines (> {MAX_FUNCTION_LINES}; say why with '# long:')")
    return problems


def problems(modules: list[Module] | None = None) -> list[str]:
    """Every broken rule, one line each; [] when the layering holds."""
    modules = modules if modules is not None else load_modules()
    found: list[str] = []
    edges: dict[str, set[str]] = {}
    for module in modules:
        own = unit(module.name)
        where = module.path.relative_to(PACKAGE_ROOT.parent)
        lines = module.path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_MODULE_LINES:
            found.append(f"{where}: {lines} lines (> {MAX_MODULE_LINES})")
        found += _long_functions(module)
        for target, line in module.imports:
            other = unit(target)
            if not other or other == own:
                continue
            if own:  # runpoint/__init__ is the facade: it may name anything
                edges.setdefault(own, set()).add(other)
            private = [part for part in target.split(".")[2:] if part.startswith("_")]
            if private and other not in FOUNDATION and own:
                found.append(f"{where}:{line}: imports {target}, a private module of runpoint.{other}")
            if own == "config" and other not in CONFIG_MAY_IMPORT:
                found.append(f"{where}:{line}: config imports runpoint.{other} (config depends on nothing else)")
            if own in NO_CONCRETE_RUN and target in CONCRETE_RUN:
                found.append(f"{where}:{line}: {own} imports {target}; use runpoint.handle.RunHandle")
    for cycle in _cycles(edges):
        found.append("package cycle: " + " -> ".join(cycle))
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"{len(found)} problem(s)" if found else "layering holds", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
