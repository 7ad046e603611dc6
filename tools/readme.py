"""Generate README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which cannot be installed here).

    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 when README.md differs from what index.ipynb gives

Markdown cells are copied; code cells are skipped when hidden (`#| hide`), shown as code otherwise, and their
saved outputs follow (a text/markdown output, such as the settings table, is inserted as markdown).
"""
import sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n"

def _directives(src: str) -> set:
    return {l[3:].strip() for l in src.splitlines() if l.startswith("#| ")}

def _code(src: str) -> str:
    return "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()

def _outputs(cell) -> list:
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "text/markdown" in data: out.append("".join(data["text/markdown"]).strip())
        elif "text/plain" in data: out.append("```\n" + "".join(data["text/plain"]).strip() + "\n```")
        elif o.get("output_type") == "stream": out.append("```\n" + "".join(o["text"]).strip() + "\n```")
    return out

def render(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown": parts.append(cell.source.strip())
        elif cell.cell_type == "code":
            d = _directives(cell.source)
            if "hide" in d or "include: false" in d: continue
            code = _code(cell.source)
            if code and "echo: false" not in d: parts.append(f"```python\n{code}\n```")
            parts.extend(_outputs(cell))
    return HEADER + "\n\n".join(p for p in parts if p) + "\n"

if __name__ == "__main__":
    readme = ROOT / "README.md"
    text = render()
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run 'make export' (python tools/readme.py)")
    else: readme.write_text(text, encoding="utf-8")
