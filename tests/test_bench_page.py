"""`benchmarks/run.py --write` fills docs/benchmarks.md between its markers: the page has
a marker pair for every section the script runs, and the writer replaces only what is
between them (a page without markers is refused before any timing)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_page_has_markers_for_every_section(run):
    run.write_sections(ROOT / "docs" / "benchmarks.md", dict.fromkeys(run.SECTIONS, ""),
                       dry=True)


def test_write_replaces_only_between_the_markers(run, tmp_path):
    page = tmp_path / "b.md"
    page.write_text("intro\n<!-- bench:core -->\nold table\n<!-- /bench:core -->\noutro\n")
    run.write_sections(page, {"core": "\n| new | table |\n"})
    assert page.read_text() == ("intro\n<!-- bench:core -->\n| new | table |\n"
                                "<!-- /bench:core -->\noutro\n")


def test_a_page_without_markers_is_refused(run, tmp_path):
    page = tmp_path / "b.md"
    page.write_text("no markers\n")
    with pytest.raises(SystemExit, match="bench:rolling"):
        run.write_sections(page, {"rolling": "x"}, dry=True)
    assert page.read_text() == "no markers\n"
