"""Shared numpydoc blocks (issue #26): a parameter (or a Returns/Raises entry) that many
public functions take is described once, so its descriptions cannot drift apart.

A docstring holds a slot, a line that is only ``{{name}}``; :func:`fill` replaces it by
the block of that name, indented like the slot. Braces elsewhere (numpydoc's
``{'daily', 'weekly'}``) and ``%`` are left alone::

    _P = {"window": '''window : int
        Bars per window (>= 1).'''}

    @fill(_P)
    def roll_mean(x, window):
        '''Rolling mean.

        Parameters
        ----------
        {{window}}
        '''
"""
from __future__ import annotations

import inspect
import re
import textwrap

__all__ = ["fill"]

_SLOT = re.compile(r"^([ \t]*)\{\{(\w+)\}\}[ \t]*$", re.M)


def fill(blocks: dict):
    """Decorator: replace each ``{{name}}`` slot line of the docstring by ``blocks[name]``.

    Parameters
    ----------
    blocks : dict of str to str
        Block text by slot name; each block is dedented, then indented like its slot.
        On a class, the docstrings of its methods (plain, class, static, properties)
        are filled too.

    Raises
    ------
    KeyError
        At import, for a slot with no block (so a typo cannot ship an empty section).

    Examples
    --------
    >>> import inspect
    >>> from quantlab._doc import fill
    >>> @fill({"x": "x : float\\n    A number."})
    ... def f(x):
    ...     '''Parameters
    ...     ----------
    ...     {{x}}
    ...     '''
    >>> print(inspect.getdoc(f))
    Parameters
    ----------
    x : float
        A number.
    """
    def sub(m: re.Match) -> str:
        indent, key = m.groups()
        if key not in blocks:
            raise KeyError(f"docstring slot {{{{{key}}}}} has no block; known: {sorted(blocks)}")
        return textwrap.indent(textwrap.dedent(blocks[key]).strip("\n"), indent)

    def decorate(obj):
        if obj.__doc__:
            obj.__doc__ = _SLOT.sub(sub, obj.__doc__)
        if isinstance(obj, type):   # a class: its methods' docstrings too
            for name, member in vars(obj).items():
                if isinstance(member, (classmethod, staticmethod)):
                    decorate(member.__func__)
                    member.__doc__ = member.__func__.__doc__
                elif isinstance(member, property):
                    member.__doc__ = decorate(member.fget).__doc__ if member.fget else None
                elif inspect.isfunction(member):
                    decorate(member)
        return obj
    return decorate
