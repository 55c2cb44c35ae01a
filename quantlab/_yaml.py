"""YAML read as typed: one place for every YAML quantlab reads (the suite config, the
command line's values, the tick engine's config).

PyYAML's ``safe_load`` follows YAML 1.1: ``on``/``no``/``yes``/``off`` become booleans
(a symbol ``ON``, the country code ``NO``, a key ``on``), ``010`` the octal 8, ``0x10``
16, ``9:30`` the sexagesimal 570, while ``1e-3`` stays text. Here a plain scalar is
read as YAML 1.2's core schema reads it (:func:`plain_scalar`); anything else, and every
quoted value, stays text.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["plain_scalar", "plain_loader", "load", "read_text"]

_INT = re.compile(r"[-+]?[0-9]+(_[0-9]+)*")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)"
                    r"|\.(nan|NaN|NAN)")


def plain_scalar(text: str):
    """A plain value as YAML 1.2's core schema reads it (decimal integers, floats with
    or without exponent, true/false, null; digits may be grouped by ``_`` as in Python),
    else ``text`` unchanged.

    Parameters
    ----------
    text : str
        The scalar as written.

    Returns
    -------
    int, float, bool, None or str

    Examples
    --------
    >>> from quantlab._yaml import plain_scalar
    >>> plain_scalar("010"), plain_scalar("1e-3"), plain_scalar("ON"), plain_scalar("9:30")
    (10, 0.001, 'ON', '9:30')
    """
    s = text.strip()
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE", "false", "False", "FALSE"):
        return s[0] in "tT"
    if _INT.fullmatch(s):
        return int(s)
    if _FLOAT.fullmatch(s):
        return float(s.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf")
                      .replace(".nan", "nan").replace(".NaN", "nan").replace(".NAN", "nan"))
    return text


def plain_loader():
    """A SafeLoader whose plain scalars are read by :func:`plain_scalar` (quoted ones stay
    text), inside lists and maps too, keys included.

    Returns
    -------
    type
        A ``yaml.SafeLoader`` subclass, for ``yaml.load(text, Loader=...)``.

    Examples
    --------
    >>> import yaml
    >>> from quantlab._yaml import plain_loader
    >>> yaml.load("{on: NO, n: 010, t: '010'}", Loader=plain_loader())
    {'on': 'NO', 'n': 10, 't': '010'}
    """
    import yaml  # lazy: only the configs and command-line values read YAML

    class Plain(yaml.SafeLoader):
        yaml_implicit_resolvers = {}      # every plain scalar reaches construct_str

        def construct_str(self, node):
            value = self.construct_scalar(node)
            return plain_scalar(value) if node.style is None else value

    Plain.add_constructor("tag:yaml.org,2002:str", Plain.construct_str)
    return Plain


def load(text: str):
    """``text`` (a YAML document) read with :func:`plain_loader`.

    Parameters
    ----------
    text : str
        The document.

    Returns
    -------
    object
        What the document holds (a dict for a config), None for an empty one.

    Examples
    --------
    >>> from quantlab._yaml import load
    >>> load("risk:\\n  max_position: 010\\n  max_clock_skew_s: 9:30\\n")
    {'risk': {'max_position': 10, 'max_clock_skew_s': '9:30'}}
    """
    import yaml  # lazy: as plain_loader

    return yaml.load(text, Loader=plain_loader())   # noqa: S506 -- a SafeLoader


def read_text(path, shown: str) -> str:
    """A config file's UTF-8 text (the suite's and the engine's configs, the command
    line's parameter files); a ValueError naming ``shown`` (the file, or its option) and
    the byte where it is not UTF-8: Python's "'utf-8' codec can't decode ..." named no
    file. Other OSErrors are raised as they are.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from quantlab._yaml import read_text
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
    >>> _ = f.write_bytes(b"symbol: caf\\xe9")
    >>> read_text(f, "--params-file c.yaml")
    Traceback (most recent call last):
    ...
    ValueError: --params-file c.yaml: not UTF-8 text (byte 11: unexpected end of data)
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{shown}: not UTF-8 text (byte {e.start}: {e.reason})") from None
