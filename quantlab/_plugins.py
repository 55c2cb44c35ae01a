"""Your own strategies and metrics in every process: ``$QUANTLAB_PLUGINS``.

``@ql.strategies.register`` and ``ql.metrics.register`` add to the registries of the
process that runs them. The ``quantlab`` command, notebooks run in batch (each in its own
kernel) and dask workers are other processes: they import the modules named in
``QUANTLAB_PLUGINS`` (module names or ``.py`` files, separated by ``os.pathsep``, ``:``
on Linux) at the first look-up of a registry (``ql.strategies.names``/``get``,
``ql.metrics.summary``/``registered``), so a strategy or metric registered there is
known by name everywhere the variable is set.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

__all__ = ["load", "absolute", "ENV"]

ENV = "QUANTLAB_PLUGINS"
_done: set[str] = set()      # started (a plugin's own look-up on its thread skips it)
_loaded: set[str] = set()    # finished: only these let a look-up skip the lock
# re-entrant: a plugin's own registry look-up calls load() again on its thread (a no-op)
_lock = threading.RLock()


def load() -> list[str]:
    """Import each module ``$QUANTLAB_PLUGINS`` names, once per process.

    An entry ending in ``.py`` (or holding a path separator) is a file, imported under
    its stem unless that file is already loaded under it (another module of that name
    is an error: the file would be skipped); any other entry is a
    module name. An entry is marked done before it is imported, so a plugin importing
    ``quantlab.strategies`` or ``quantlab.metrics`` does not load itself again.

    Returns
    -------
    list of str
        The entries imported by this call.

    Raises
    ------
    ImportError
        If an entry cannot be imported: the message names the variable and the entry
        (a missing file, a module not on ``sys.path``, an error inside the module).

    Examples
    --------
    >>> import os
    >>> from quantlab import _plugins
    >>> os.environ.get("QUANTLAB_PLUGINS", "") == "" and _plugins.load() == []
    True
    """
    out = []
    entries = [e.strip() for e in os.environ.get(ENV, "").split(os.pathsep)]
    # the common case: no lock taken. Not _done: another thread's look-up during the
    # first import would return before the plugin had registered anything
    if all(e in _loaded for e in entries if e):
        return out
    with _lock:   # two threads' first look-ups (a thread pool's) import a plugin once
        for entry in filter(None, entries):
            if entry in _done:
                continue
            _done.add(entry)
            try:
                _import(entry)
            except Exception as e:
                _done.discard(entry)   # a corrected file is tried again by the next look-up
                raise ImportError(f"{ENV} entry {entry!r} could not be imported: "
                                  f"{type(e).__name__}: {e}") from e
            _loaded.add(entry)
            out.append(entry)
    return out


def _is_file(entry: str) -> bool:
    return entry.endswith(".py") or os.sep in entry or "/" in entry


def absolute() -> str:
    """Make the file entries of ``$QUANTLAB_PLUGINS`` absolute, from this working directory.

    A notebook's kernel runs in another directory: ``QUANTLAB_PLUGINS=my_strategies.py
    quantlab run-suite`` named a file the kernel did not find. Called before a process is
    started in another directory; it inherits the rewritten variable. An entry with no
    file here (a module name, a missing file) is kept as it is.

    Returns
    -------
    str
        The variable's new value (also set in ``os.environ``; ``""`` if unset).

    Examples
    --------
    >>> import os
    >>> from quantlab import _plugins
    >>> os.environ.get("QUANTLAB_PLUGINS", "") == "" and _plugins.absolute() == ""
    True
    """
    value = os.environ.get(ENV)
    if not value:
        return ""
    out = []
    for entry in value.split(os.pathsep):
        e = entry.strip()
        path = Path(e).expanduser()
        out.append(str(path.resolve()) if e and _is_file(e) and path.is_file() else entry)
    os.environ[ENV] = os.pathsep.join(out)
    return os.environ[ENV]


def _import(entry: str) -> None:
    if not _is_file(entry):
        importlib.import_module(entry)
        return
    path = Path(entry).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no file {str(path)!r} (from the working directory "
                                f"{os.getcwd()!r})")
    name = path.stem
    if name in sys.modules:
        there = getattr(sys.modules[name], "__file__", None)
        if there and Path(there).resolve() == path.resolve():
            return   # imported already (e.g. `import my_strategies`)
        # another module of that name (the standard library's json, a second
        # strategies.py): the file was skipped, silently
        raise ImportError(f"a module named {name!r} is already imported (from "
                          f"{there or 'a built-in'}); rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # registered before it runs, as an import does: its classes pickle by this name
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
