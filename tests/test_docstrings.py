"""Every public name has a numpydoc docstring with an Example that runs (issue #29).

Public: each name in the ``__all__`` of ``quantlab`` and of every public module under
it (every such module defines ``__all__``), and the public methods those classes
define. Each needs an ``Examples`` section, not skipped wholesale, and a ``Parameters``
section when it takes arguments (a class: in its own or its ``__init__``'s docstring;
Parameters or Attributes).
The Examples run as doctests in ``make test`` (``pytest quantlab --doctest-modules``).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import quantlab

# name -> why its Examples may be skipped (none today)
SKIP_ALLOWED: dict[str, str] = {}
# modules that run as a program, not imported by users
NOT_API = {"quantlab.__main__"}


def public_modules() -> list[str]:
    names = ["quantlab"]
    for m in pkgutil.walk_packages(quantlab.__path__, "quantlab."):
        if not any(part.startswith("_") for part in m.name.split(".")[1:]):
            names.append(m.name)
    return [n for n in names if n not in NOT_API]


def _sections(doc: str) -> set[str]:
    lines = doc.splitlines()
    return {a.strip() for a, b in zip(lines, lines[1:])
            if b.strip() and set(b.strip()) == {"-"} and len(b.strip()) >= 3}


def _takes_arguments(obj) -> bool:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in sig.parameters.values())


def public_members():
    """(qualified name, object, docstring) of every public function, class and method."""
    seen = set()
    for mod_name in public_modules():
        mod = importlib.import_module(mod_name)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{mod_name}.{name}", obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    func = getattr(value, "__func__", value)
                    if attr.startswith("_") or isinstance(value, property) \
                            or not callable(func) or id(func) in seen:
                        continue
                    seen.add(id(func))
                    yield f"{mod_name}.{name}.{attr}", func


def test_every_public_module_declares_its_api_in___all__():
    missing = [m for m in public_modules()
               if not hasattr(importlib.import_module(m), "__all__")]
    assert not missing, f"modules without __all__: {missing}"


def test_every_public_name_has_numpydoc_examples_that_are_not_skipped():
    bad = []
    for qual, obj in public_members():
        doc = inspect.getdoc(obj) or ""
        sections = _sections(doc)
        lacks = []
        if "Examples" not in sections:
            lacks.append("Examples")
        else:
            ex = doc.split("Examples\n--------", 1)[1]
            prompts = [ln for ln in ex.splitlines() if ln.lstrip().startswith(">>>")]
            if not prompts or (all("+SKIP" in ln for ln in prompts)
                               and qual not in SKIP_ALLOWED):
                lacks.append("an Example that runs")
        target = obj
        if inspect.isclass(obj):
            doc += "\n" + (inspect.getdoc(obj.__init__) or "")
            sections = _sections(doc)
            target = obj.__init__
        # a result object made by the library documents its fields as Attributes
        given = {"Parameters", "Attributes"} if inspect.isclass(obj) else {"Parameters"}
        if _takes_arguments(target) and not sections & given \
                and not issubclass_exception(obj):
            lacks.append("Parameters")
        if lacks:
            bad.append(f"{qual}: no {', '.join(lacks)}")
    assert not bad, f"{len(bad)} public names lack numpydoc sections:\n" + "\n".join(bad)


def issubclass_exception(obj) -> bool:
    return inspect.isclass(obj) and issubclass(obj, BaseException)


@pytest.mark.parametrize("doc, expected", [
    ("Summary.\n\nParameters\n----------\nx : int\n\nExamples\n--------\n>>> 1\n1",
     {"Parameters", "Examples"}),
    ("Summary with a dash - line.\n", set()),
])
def test_section_reader_finds_numpydoc_headers(doc, expected):
    assert _sections(doc) == expected
