"""Published benchmark figures cannot drift from their result files: every
`<!-- figure: ... -->` block in README.md, docs/, benchmarks/results/README.md
and the examples' headers equals what benchmarks/render.py computes from
benchmarks/results/*.json."""

import os
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import figures  # noqa: E402
import render  # noqa: E402

PAGES = render.pages(REPO_ROOT)


@pytest.mark.parametrize("page", PAGES)
def test_page_figures_equal_their_result_files(page):
    stale = render.check([page], root=REPO_ROOT)
    assert not stale, render.describe(stale) + "\nRun: python benchmarks/render.py"


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md", "docs/methods/admm.md",
                                  "docs/methods/slr.md", "docs/distributed.md", "docs/examples.md",
                                  "benchmarks/results/README.md"])
def test_pages_that_cite_results_use_blocks(page):
    assert render.blocks(page, root=REPO_ROOT), f"{page} cites benchmark results but has no figure block"


def test_every_result_file_has_its_run_record_published():
    """Each JSON in benchmarks/results/ says in the results README what it records about its run."""
    names = sorted(p[:-5] for p in os.listdir(os.path.join(REPO_ROOT, "benchmarks", "results"))
                   if p.endswith(".json") and "_quick" not in p)
    calls = render.blocks(os.path.join("benchmarks", "results", "README.md"), root=REPO_ROOT)
    assert [n for n in names if f"run.record {n}" not in calls] == []


def test_a_stale_block_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Seeds: <!-- figure: admm_slr.seed_counts -->5 seeds<!-- /figure -->.\n")
    stale = render.check(["page.md"], root=str(tmp_path))
    assert list(stale) == ["page.md"]
    assert "5 seeds" in render.describe(stale)
    render.check(["page.md"], root=str(tmp_path), write=True)
    assert not render.check(["page.md"], root=str(tmp_path))


def test_a_missing_row_renders_not_yet_run(monkeypatch):
    real = figures.load("admm_slr_paper")
    monkeypatch.setattr(figures.admm_slr, "load", lambda name: {**real, "runs": []})
    assert figures.FIGURES["admm_slr_paper.row"]("admm_paper") == "`admm_paper`: not yet run"
    assert "not yet run" in figures.FIGURES["admm_slr_paper.table"]("admm_paper", "gmp_admm")
    assert "not yet run" in figures.FIGURES["admm_slr_paper.lead"]("admm_paper", "gmp_admm")


def test_unknown_figure_is_an_error():
    with pytest.raises(KeyError, match="no figure function"):
        render.compute("nothing.here")
