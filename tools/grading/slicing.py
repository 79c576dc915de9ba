"""Which statements of a notebook an exercise needs: grading runs those, not the notebook's long demonstrations.

Each top-level statement of a code cell is described by the names it binds, the names it reads (inside function
bodies too: a function reads its globals when called) and the names of objects it may change in place
(``model.eval()``, ``nn.init.zeros_(block.bn2.weight)``, ``table["x"] = ...``). An exercise's program is

    the setup cell (the notebook's first code cell, always), the earlier statements the exercise needs,
    the student's solution cell, the course's check cell,

where "needs" is followed backwards from the names the solution and check cells read: a statement is kept when it
binds or changes a needed name, and then its own names are needed too; a name rebound for sure (an import, a
``def``, ``x = ...``) is not needed further back. Calls of ``check_function``/``check_close`` (other exercises'
checks) are never kept. The analysis is Python's own (:mod:`symtable`), so comprehensions, lambdas, defaults and
class bodies count correctly; it is checked on every exercise by running the solution through its program
(tests/test_grading.py), and a name that nothing before the exercise binds is reported when the course is built.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field

from IPython.core.inputtransformer2 import TransformerManager

CHECK_CALLS = frozenset({"check_function", "check_close"})
PROVIDED = frozenset(dir(builtins)) | {"display", "get_ipython", "In", "Out", "_", "__", "___"}
_TRANSFORM = TransformerManager()


@dataclass(frozen=True)
class Statement:
    """One top-level statement of a cell, with what it binds, reads and may change."""

    cell: int
    source: str
    defs: frozenset[str]
    strong: frozenset[str]  # rebound for sure: earlier bindings of these names are dead
    uses: frozenset[str]
    touches: frozenset[str]  # objects it may change in place (method receivers, call arguments, item/attribute targets)
    checks: bool = False  # calls check_function/check_close
    star: bool = False  # `from m import *`: binds names nobody can list


@dataclass
class Unit:
    """A piece of code run as one cell in the grading kernel."""

    label: str
    source: str
    owner: str  # "course" (restored from the instructor's notebook) or "student"
    role: str  # "context", "solution" or "check"
    cells: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"label": self.label, "source": self.source, "owner": self.owner, "role": self.role}


def python(source: str) -> str:
    """The cell as plain Python (IPython magics and ``!shell`` lines become calls, as the kernel runs them)."""
    return _TRANSFORM.transform_cell(source)


def _segment(lines: list[bytes], node: ast.stmt) -> str:
    """The statement's own text (decorators included); ast's columns count UTF-8 bytes."""
    decorators = getattr(node, "decorator_list", [])
    first, start = (decorators[0].lineno, 0) if decorators else (node.lineno, node.col_offset)
    chunk = lines[first - 1:node.end_lineno]
    if len(chunk) == 1:
        chunk[0] = chunk[0][start:node.end_col_offset]
    else:
        chunk[0], chunk[-1] = chunk[0][start:], chunk[-1][:node.end_col_offset]
    return b"\n".join(chunk).decode()


def _global_reads(table: symtable.SymbolTable) -> set[str]:
    names = set()
    for child in table.get_children():
        names |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
        names |= _global_reads(child)
    return names


def _global_writes(table: symtable.SymbolTable) -> set[str]:
    names = set()
    for child in table.get_children():
        names |= {s.get_name() for s in child.get_symbols() if s.is_declared_global() and s.is_assigned()}
        names |= _global_writes(child)
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _executed_nodes(node: ast.AST):
    """The nodes of a statement that run when it runs (function and lambda bodies run later, when called)."""
    yield node
    for name, value in ast.iter_fields(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and name == "body":
            continue
        if isinstance(node, ast.Lambda) and name == "body":
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from _executed_nodes(child)


def _touches(node: ast.stmt) -> set[str]:
    names = set()
    for sub in _executed_nodes(node):
        if isinstance(sub, ast.Call):
            if isinstance(sub.func, ast.Attribute):
                names.add(_root(sub.func.value))
            names |= {_root(arg) for arg in [*sub.args, *(k.value for k in sub.keywords)]}
        elif isinstance(sub, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = sub.targets if isinstance(sub, (ast.Assign, ast.Delete)) else [sub.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, (ast.Attribute, ast.Subscript)):
                        names.add(_root(part))
    return names - {None}


def _checks(node: ast.stmt) -> bool:
    for sub in _executed_nodes(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in CHECK_CALLS:
                return True
    return False


def _strong(node: ast.stmt, uses: set[str]) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = set()
        for target in targets:
            parts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            if not all(isinstance(p, ast.Name) for p in parts):
                return set()
            names |= {p.id for p in parts}
        return names - uses
    return set()


def statements(source: str, cell: int = 0) -> list[Statement]:
    """The top-level statements of a cell, analysed. Raises ``SyntaxError`` for code that does not parse."""
    code = python(source)
    lines = [line.encode() for line in code.split("\n")]
    found = []
    for node in ast.parse(code).body:
        text = _segment(lines, node)
        table = symtable.symtable(text, "<cell>", "exec")
        top = table.get_symbols()
        uses = {s.get_name() for s in top if s.is_referenced()} | _global_reads(table)
        defs = {s.get_name() for s in top if s.is_assigned() or s.is_imported() or s.is_namespace()}
        defs |= _global_writes(table)
        star = isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
        found.append(Statement(cell, text, frozenset(defs), frozenset(_strong(node, uses)), frozenset(uses),
                               frozenset(_touches(node)), _checks(node), star))
    return found


def reads(source: str) -> set[str]:
    """The names a whole cell needs from before it (names it binds before reading them are its own)."""
    needed, bound = set(), set()
    for statement in statements(source):
        needed |= statement.uses - bound
        bound |= statement.strong
    return needed


def needed_statements(candidates: list[tuple[Statement, bool]], modules: set[str] = frozenset()
                      ) -> tuple[list[int], set[str]]:
    """Which candidate statements a program needs, following names backwards from the forced ones.

    Args:
        candidates: ``(statement, forced)`` in program order; forced statements (the setup cell, the solution
            and check cells) are always kept, the others only when a kept statement after them needs them.
        modules: Names bound only by imports: calling a module's function (``torch.manual_seed(0)``) does not
            count as changing the module.

    Returns:
        (indices of the kept candidates, in order; names read but bound by nothing before them, builtins aside).
    """
    needed: set[str] = set()
    kept = []
    for index in range(len(candidates) - 1, -1, -1):
        statement, forced = candidates[index]
        if not forced:
            if statement.checks:
                continue
            if not (statement.star or statement.defs & needed or (statement.touches - modules) & needed):
                continue
        kept.append(index)
        needed -= statement.strong
        needed |= statement.uses
    return kept[::-1], needed - PROVIDED


def import_names(cells: list[list[Statement]]) -> set[str]:
    """Names that only imports bind, anywhere in the notebook (modules and imported functions)."""
    imported, other = set(), set()
    for cell in cells:
        for statement in cell:
            if statement.source.lstrip().startswith(("import ", "from ")):
                imported |= statement.defs
            else:
                other |= statement.defs
    return imported - other
