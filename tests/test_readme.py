"""README.md is generated from nbs/index.ipynb by tools/make_readme.py: fail when it is out of date."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_readme  # noqa: E402


def test_readme_up_to_date():
    md, files = make_readme.render(json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8")))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == md, "README.md is out of date with nbs/index.ipynb: run `python tools/make_readme.py`"
    for path, data in files.items():
        assert (ROOT / path).read_bytes() == data, f"{path} is out of date: run `python tools/make_readme.py`"


def test_readme_has_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ('pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && pip install -e . && '
            'erasus bench digits --scenario class --strategies gradient_ascent,negative_gradient,finetune --seeds 3 '
            '--out runs/digits_class.json') in readme      # no dev extra for the main job; results outside results/
    assert "\n.ci/test\n" in readme
    assert readme.index("erasus bench digits") < readme.index("## Quick start")  # at the very top


def test_readme_lists_every_registered_component():
    "The registry tables are saved outputs of nbs/index.ipynb: re-run it when a strategy or selector is added."
    from erasus.core import SELECTORS, STRATEGIES
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for reg in (STRATEGIES, SELECTORS):
        missing = [n for n in reg.names() if f"| `{n}` |" not in readme]
        assert not missing, (f"README.md does not list the {reg.kind} entries {missing}: execute nbs/index.ipynb "
                             "(jupyter nbconvert --to notebook --execute --inplace nbs/index.ipynb), then "
                             "`nbdev_clean` and `python tools/make_readme.py`")


def test_converter():
    "Hidden cells and `#|` lines go; echo: false keeps outputs only; pandas tables become Markdown tables."
    code = lambda src, outs=(): dict(cell_type="code", source=src, outputs=list(outs), metadata={})
    html = ('<div><style scoped>.x{}</style><table border="1" class="dataframe"><thead><tr style="text-align: right;">'
            '<th></th><th>a</th></tr><tr><th>name</th><th></th></tr></thead><tbody><tr><th>x|y</th><td>1</td></tr>'
            '</tbody></table></div>')
    nb = dict(cells=[
        dict(cell_type="markdown", source="# T\n> summary\n\n- order: 3", metadata={}),
        code("#| hide\nsecret = 1"),
        code("#| export\ndef f(): pass"),
        code("#| echo: false\nshown_not", [dict(output_type="execute_result", data={"text/html": html, "text/plain": "t"})]),
        code("print(2)", [dict(output_type="stream", name="stdout", text="2\n")]),
    ])
    md, files = make_readme.render(nb)
    assert "secret" not in md and "#|" not in md and "order" not in md and "shown_not" not in md and "style" not in md
    assert "```python\ndef f(): pass\n```" in md
    assert "| name | a |\n|---|---|\n| x\\|y | 1 |" in md
    assert "```python\nprint(2)\n```\n\n```\n2\n```" in md
    assert md.startswith("# T\n\n<!-- WARNING") and files == {}
