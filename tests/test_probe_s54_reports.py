"""Session 54 probe of the shared reports: the index of a report folder and the tear
sheets on edge inputs (what they show, not only that they build)."""
from pathlib import Path

from quantlab import suite

PROV = {"git_commit": "x", "data_sha256": "y"}


def test_index_does_not_link_an_earlier_batchs_report_deleted_since(tmp_path):
    # an earlier batch listed a.html and b.html; a.html was deleted, then a rebuild of b
    # kept a in the index (earlier runs stay listed) with a link to the missing page
    for name in ("a", "b"):
        (tmp_path / f"{name}.html").write_text("report")
    suite.write_index([suite.Run(f"{n}.ipynb", status="ok", html=str(tmp_path / f"{n}.html"))
                       for n in ("a", "b")], tmp_path, PROV)
    (tmp_path / "a.html").unlink()
    page = suite.write_index([suite.Run("b.ipynb", status="ok", html=str(tmp_path / "b.html"))],
                             tmp_path, PROV).read_text()
    assert 'href="./b.html"' in page
    assert 'href="./a.html"' not in page
    assert "its report a.html is no longer in this folder" in page
    assert [r.name for r in suite.read_index(tmp_path)] == ["a", "b"]   # still listed
