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
