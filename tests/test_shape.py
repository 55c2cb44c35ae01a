"""Function length (issue #26): no function in quantlab/ or cython_kernels/ is longer
than ~80 lines of code, unless a comment on its first body line says why
(``# > 80 lines: <why>``). Checked on the source: Python by its AST, Cython by
indentation (a def/cdef/cpdef block ends at the next line indented no deeper).
Docstrings and comments do not count.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 80
WHY = re.compile(r"#\s*>\s*80 lines\b.*\S")
CY_DEF = re.compile(r"^(\s*)(?:cdef|cpdef|def)\s+(?:[\w\[\],\s\*]+?\s+)?\*?(\w+)\s*\(")


def _code_lines(src: str) -> set[int]:
    """Line numbers holding code: not blank, not only a comment, not a docstring."""
    lines: set[int] = set()
    doc: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                            tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - doc


def python_long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    src = path.read_text()
    code = _code_lines(src)
    text = src.splitlines()
    out = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        n = sum(1 for i in range(node.body[0].lineno, node.end_lineno + 1) if i in code)
        first = node.body[0].lineno - 1
        said = any(WHY.search(line) for line in text[node.lineno - 1:first + 3])
        if n > limit and not said:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    return out


def _is_code(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def cython_long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = CY_DEF.match(line)
        if not m or " class " in f" {line.strip()}":
            continue
        indent = len(m.group(1))
        j = i
        while j < len(lines) - 1 and not lines[j].split("#")[0].rstrip().endswith(":"):
            j += 1
        body, k, in_doc = [], j + 1, False
        while k < len(lines):
            s = lines[k]
            if _is_code(s) and len(s) - len(s.lstrip()) <= indent and not in_doc:
                break
            quotes = s.count('"""') + s.count("'''")
            if in_doc or quotes:
                in_doc = in_doc != (quotes % 2 == 1)
            elif _is_code(s):
                body.append(k)
            k += 1
        said = any(WHY.search(s) for s in lines[i:j + 4])
        if len(body) > limit and not said:
            out.append(f"{path.relative_to(ROOT)}:{i + 1} {m.group(2)}: {len(body)} lines")
    return out


def test_no_function_is_longer_than_80_lines_without_saying_why():
    long = []
    for path in sorted((ROOT / "quantlab").rglob("*.py")):
        long += python_long_functions(path)
    for path in sorted((ROOT / "cython_kernels").glob("*.p[yx][xid]")):
        long += cython_long_functions(path)
    assert not long, "functions over 80 lines (split them, or say why with " \
        "'# > 80 lines: <why>' on the first body line):\n" + "\n".join(long)


def test_length_check_catches_a_long_python_and_cython_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT + 1))
    py = ROOT / "tests" / "_shape_probe.py"
    cy = ROOT / "tests" / "_shape_probe.pyx"
    try:
        py.write_text(f'def f():\n    """doc\n\n    lines\n    """\n{body}\n\n\ndef g():\n    # > 80 lines: a probe\n{body}\n')
        cy.write_text(f"cdef double f(double a) noexcept nogil:\n{body}\n    return a\n\n"
                      f"def short():\n    return 1\n")
        assert [s.split(":")[1].split()[1] for s in python_long_functions(py)] == ["f"]
        assert [s.split()[1].rstrip(":") for s in cython_long_functions(cy)] == ["f"]
        # at the limit, and with its docstring and comments, f is not long
        short = "\n".join(f"    x{i} = {i}  # c" for i in range(LIMIT))
        py.write_text(f'def f():\n    """doc\n    """\n    # why\n{short}\n')
        assert python_long_functions(py) == []
    finally:
        py.unlink(missing_ok=True)
        cy.unlink(missing_ok=True)
