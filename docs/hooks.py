"""mkdocs hook: publishes the benchmark PNGs (benchmarks/results/*.png) with the site,
and points links to the example scripts at the repository.

The figures stay where the benchmarks write them; docs/benchmarks.md links
them as `benchmarks/results/<name>.png`. docs/examples.md links the scripts
as `../examples/<name>.py` (right on GitHub); on the site those become links
to the file in the repository (`repo_url`).
"""

import glob
import os

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def on_files(files, config):
    for path in sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "*.png"))):
        files.append(File(os.path.relpath(path, ROOT), ROOT, config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Links written for GitHub (`../../benchmarks/results/x.png` from docs/methods/)
    point out of the docs folder; on the site the figures sit at the root's
    `benchmarks/results/`."""
    depth = page.file.src_uri.count("/")
    markdown = markdown.replace("../" * (depth + 1) + "benchmarks/results/", "../" * depth + "benchmarks/results/")
    examples = config["repo_url"].rstrip("/") + "/blob/main/examples/"
    return markdown.replace("](" + "../" * (depth + 1) + "examples/", "](" + examples)
