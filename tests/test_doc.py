"""quantlab._doc.fill: shared numpydoc blocks (issue #26)."""
from __future__ import annotations

import importlib
import inspect

import pytest

from quantlab._doc import fill

BLOCKS = {"x": "x : int\n    A number.", "ex": ">>> 1 + 1\n2"}


def test_fill_on_a_class_fills_methods_classmethods_staticmethods_and_properties():
    @fill(BLOCKS)
    class C:
        """Class.

        Parameters
        ----------
        {{x}}
        """

        def f(self, x):
            """F.

            Parameters
            ----------
            {{x}}
            """

        @classmethod
        def g(cls, x):
            """G.

            Examples
            --------
            {{ex}}
            """

        @staticmethod
        def h(x):
            """{{x}}"""

        @property
        def p(self):
            """P.

            {{ex}}
            """

    for obj in (C, C.f, C.g, C.h, C.p, vars(C)["g"], vars(C)["h"], vars(C)["p"]):
        doc = inspect.getdoc(obj)
        assert "{{" not in doc, doc
    assert inspect.getdoc(C.f).endswith("Parameters\n----------\nx : int\n    A number.")
    assert inspect.getdoc(C.g).endswith("Examples\n--------\n>>> 1 + 1\n2")
    assert inspect.getdoc(C.p) == "P.\n\n>>> 1 + 1\n2"


def test_fill_refuses_an_unknown_slot_at_decoration():
    with pytest.raises(KeyError, match="nope"):
        @fill(BLOCKS)
        def f():
            """{{nope}}"""


MODULES = ["crossmarket", "optimize", "risk", "ensemble", "integrity", "measures", "rolling"]


@pytest.mark.parametrize("name", MODULES)
def test_shape_modules_render_every_docstring_slot(name):
    """Every public docstring of the modules that use fill is complete: no slot left,
    whether on a function, a class, a method, a classmethod or a property."""
    mod = importlib.import_module(f"quantlab.{name}")
    left = []
    for attr in mod.__all__:
        obj = getattr(mod, attr)
        members = [obj] + (list(vars(obj).values()) if inspect.isclass(obj) else [])
        for m in members:
            doc = getattr(getattr(m, "__func__", m), "__doc__", None) or ""
            if isinstance(m, property):
                doc = m.__doc__ or ""
            if "{{" in doc:
                left.append(f"{attr}.{getattr(m, '__name__', m)}")
    assert not left, left


def test_crossmarket_classmethod_and_methods_docstrings_are_filled():
    from quantlab.crossmarket import CrossMarketAnalyzer as C

    assert "window : int, default 63" in inspect.getdoc(C.fx_impact)
    assert ">>> cm = crossmarket.CrossMarketAnalyzer.from_bundled()" in inspect.getdoc(
        C.from_bundled)
