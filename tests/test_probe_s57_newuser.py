"""Session 57 newcomer probe: the README's `make report`, the batch examples of
docs/user_guide/batch_and_reports.md and the tutorial, followed literally on a fresh
clone, where the result differed from what the docs say."""
import json

import nbformat

from quantlab import cli
from quantlab.suite import Run, plan_outputs, write_index

PROV = {"git_commit": "abc", "data_sha256": "f00"}


def _index(out, runs):
    write_index([Run(nb, name, params, status="ok") for nb, name, params in runs], out, PROV)


# ---- a rerun of the same notebook with the same parameters replaces its entry ----------

def test_same_notebook_and_parameters_under_another_name_keep_the_earlier_name(tmp_path):
    """`make report` lists 00_quickstart-MSFT (the config's name for -p symbol MSFT);
    `quantlab run-suite notebooks/00_quickstart.ipynb -p symbol MSFT` into the same folder
    added 00_quickstart-2 beside it instead of replacing it, as the docs promise."""
    nb = str(tmp_path / "q.ipynb")
    _index(tmp_path, [(nb, "q", {}), (nb, "q-MSFT", {"symbol": "MSFT"})])
    runs = [Run(nb, parameters={"symbol": "MSFT"}), Run(nb, parameters={"symbol": "IBM"}),
            Run(nb, parameters={"symbol": "MSFT"})]
    # the repeat within the batch still gets a name of its own
    assert [r.name for r in plan_outputs(runs, tmp_path)] == ["q-MSFT", "q-2", "q-3"]


def test_rerun_through_the_cli_leaves_one_entry_per_notebook_and_parameters(tmp_path):
    nb = tmp_path / "q.ipynb"
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("symbol = 'AAPL'", metadata={"tags": ["parameters"]}),
                  nbformat.v4.new_code_cell("print(symbol)")]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    nbformat.write(book, nb)
    out = tmp_path / "out"
    _index(out, [(str(nb), "q-MSFT", {"symbol": "MSFT"})])
    assert cli.main(["run-suite", str(nb), "-p", "symbol", "MSFT", "--out", str(out)]) == 0
    entries = json.loads((out / "index.json").read_text())
    assert [(e["name"], e["parameters"]) for e in entries] == [("q-MSFT", {"symbol": "MSFT"})]
    assert (out / "q-MSFT.ipynb").exists() and not (out / "q-2.ipynb").exists()


# ---- the tutorial's look-ahead check: which value is which, for which asset ------------

def test_lookahead_message_names_the_asset_and_which_value_came_from_which_run():
    """The tutorial's Peeking strategy failed with '... ([nan nan nan] vs [1. 1. 1.])':
    no asset named, and nothing said which array was the truncated run's."""
    import pytest

    import quantlab as ql
    from quantlab.testing import assert_no_lookahead

    class PeekIBM(ql.strategies.Strategy):
        name, defaults, param_space = "probe_s57_peek_ibm", {}, {}

        def _signal(self, ds):
            up = (ds["close"].shift(time=-1) > ds["close"]).astype(float)
            return up.where(ds.asset == "IBM", 0.0)

    ds = ql.data.load().isel(time=slice(0, 400))
    with pytest.raises(AssertionError) as e:
        assert_no_lookahead(PeekIBM(), ds, n_cuts=3)
    assert ("(IBM: 0 with data up to then, 1 with all data)" in str(e.value)
            or "(IBM: 1 with data up to then, 0 with all data)" in str(e.value)), str(e.value)

    class PeekGrid(PeekIBM):
        name, defaults, param_space = "probe_s57_peek_grid", {"k": 1}, {"k": (1, 9)}

        def _signal(self, ds, k):
            return ds["close"].shift(time=-k) / ds["close"]

    grid = PeekGrid(k=[1, 2])   # (time, asset, k): 6 values differ (GOOG not listed yet)
    with pytest.raises(AssertionError, match=r"\(asset=AAPL, k=1: nan with data up to then, "
                                             r"[0-9.]+ with all data; .*; and 1 more\)$"):
        assert_no_lookahead(grid, ds, n_cuts=3)
