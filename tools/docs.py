"""Build the documentation site offline from the notebooks into `_site/` (`make docs`).

    python tools/docs.py            # process the notebooks, then build _site/ with MkDocs
    python tools/docs.py --serve    # the same, then serve _site/ on http://127.0.0.1:8000 (Ctrl-C stops)
    python tools/docs.py --site DIR --work DIR2   # elsewhere (the tests build into a temporary folder)

Where Quarto is installed, `nbdev_docs` builds nbdev's own site from the same notebooks and settings.ini. Quarto cannot
be installed here, so this script does what nbdev_docs does before Quarto and hands the result to a static site
generator that installs from PyPI (mkdocs-material + mkdocs-jupyter):

1. Each notebook in nbs/ (and nbs/jobs/) goes through nbdev's processors (`FilterDefaults`): frontmatter from the title
   cell, a `show_doc` cell after every exported definition (the API reference, in place of the exported source),
   `#| hide` cells removed, doc links for backticked names. One processor is swapped: nbdev's `exec_show_docs` re-runs every exported cell and every
   cell holding an import in a fresh shell (slow, and a cell that mixes an import with test code fails it); here the
   `show_doc` cells are filled from the installed package instead, which nbdev_export built from the same cells.
2. The processed notebooks are made plain for nbconvert: Quarto cell options (`#| echo: false`, `output: asis`) become
   markdown cells or cell tags, nbdev's absolute doc links (`doc_host` + `doc_baseurl`) become relative links.
   Pages are named as nbdev names them (`07_registry.ipynb` -> `registry.html`), so doc links mean the same on both sites.
3. MkDocs (`--strict`) renders the pages with their saved outputs (nothing is executed), adds the navigation, the extra
   pages in docs/ and a client-side search index. Afterwards the headings get the ids the table of contents links to,
   and the MathJax `<script>` nbconvert adds (a CDN URL) is removed, as no notebook uses math: the site needs no
   network to build or to read. tests/test_docs.py checks the result, in headless Chromium too.
"""
import argparse, json, os, re, shutil, subprocess, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"                # hand-written: mkdocs.yml (base config), extra pages, CSS
WORK = ROOT / "_proc" / "site_src"  # generated page sources (gitignored with _proc/)
SITE = ROOT / "_site"

def _config():
    os.chdir(ROOT)   # nbdev finds settings.ini from the working folder
    from nbdev.config import get_config
    return get_config()

def notebooks(cfg) -> list[Path]:
    "Every notebook nbdev would document: nbs/**/*.ipynb, skipping folders and files that start with `_` or `.`."
    from nbdev.doclinks import nbglob
    return sorted(Path(p) for p in nbglob(cfg.nbs_path, func=Path))

def page_source(nb: Path, nbs: Path) -> Path:
    "Where a notebook's page goes in the site, relative to its root: nbdev's name (`06b_profile.ipynb` -> `profile`)."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(nb.relative_to(nbs)).with_suffix(".ipynb")

# -- 1. nbdev's processing, with show_doc filled from the package ---------------------------------------------------

def _processors():
    from importlib import import_module
    from fastcore.basics import AttrDict
    from nbdev.processors import FilterDefaults, exec_show_docs, insert_warning, _default_exp
    from nbdev.process import Processor
    from nbdev.showdoc import show_doc
    from nbdev.config import get_config

    class show_doc_from_package(Processor):
        "Fill `show_doc(...)` cells by evaluating them in the exported module (the package nbdev_export built)."
        def begin(self):
            self.ns, self.nb.doc_names_ = {"show_doc": show_doc}, []
            if (exp := _default_exp(self.nb)):
                with warnings.catch_warnings():   # importing the package: MLflow's notes about type hints are not the docs' business
                    warnings.simplefilter("ignore")
                    self.ns |= vars(import_module(f"{get_config().lib_name}.{exp}"))
        def cell(self, cell):
            src = "\n".join(l for l in (cell.source or "").splitlines() if not l.startswith("#|")).strip()
            if cell.cell_type != "code" or not src.startswith("show_doc(") or not getattr(self.nb, "has_docs_", False): return
            arg = src[len("show_doc("):-1].strip()
            if re.fullmatch(r"[\w.]+", arg):   # show_doc(name): headed by the name (a click command would say `command`)
                md = show_doc(eval(arg, self.ns), name=arg)._repr_markdown_()
                self.nb.doc_names_.append(arg)
                if "." in arg: md = f'<span id="{arg.lower()}"></span>\n\n' + md   # nbdev's anchor for a method
            else: md = eval(src, self.ns)._repr_markdown_()
            cell.outputs = [AttrDict(output_type="display_data", metadata={},
                                     data=AttrDict({"text/markdown": md.splitlines(keepends=True), "text/plain": [src]}))]

    class Procs(FilterDefaults):
        def base_procs(self):
            swap = {exec_show_docs: show_doc_from_package}
            return [swap.get(p, p) for p in super().base_procs() if p is not insert_warning]
    return Procs

def process(nb_path: Path, procs) -> tuple[dict, list]:
    "The notebook after nbdev's doc processors, as a plain dict, and the names its `show_doc` cells document."
    from execnb.nbio import read_nb, nb2dict
    nb = read_nb(nb_path)
    procs()(nb)
    return nb2dict(nb), getattr(nb, "doc_names_", [])

# -- 2. plain notebooks for nbconvert --------------------------------------------------------------------------------

def directives(src: str) -> dict:
    "Quarto/nbdev cell options at the top of a code cell: `#| echo: false` -> {'echo': 'false'}."
    out = {}
    for line in src.splitlines():
        if not line.startswith("#|"): break
        k, _, v = line[2:].strip().partition(":")
        out[k.strip()] = v.strip()
    return out

def _text(x) -> str: return "".join(x) if isinstance(x, list) else (x or "")

_QUARTO_ATTRS = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{target="_blank" style="([^"]*)"\}')

def plain_markdown(md: str) -> str:
    "Markdown nbconvert renders: Quarto's `[text](url){target=... style=...}` becomes an HTML link."
    return _QUARTO_ATTRS.sub(lambda m: f'<a href="{m[2]}" class="nbdev-source" target="_blank">{m[1]}</a>', md)

_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")

def relative_links(md: str, page: Path, doc_url: str, pages: dict, anchors: dict) -> str:
    "Rewrite nbdev doc links (`doc_url` + `x.html#y`) and links to notebooks (`06_train.ipynb`) to links relative to `page`."
    up, prefix = "../" * (len(page.parts) - 1), doc_url.rstrip("/") + "/"
    def link(m):
        text, url = m[1], m[2]
        if url.startswith(prefix):                       # nbdev's doc link to a symbol: keep it only if the symbol has an entry
            target, _, frag = url[len(prefix):].partition("#")
            if frag and frag not in anchors.get(target, ()): return text
            return f"[{text}]({up}{target or 'index.html'}{'#' + frag if frag else ''})"
        name = Path(url.partition("#")[0]).name
        if name.endswith(".ipynb") and name in pages and "://" not in url:
            frag = url.partition("#")[2]
            return f"[{text}]({up}{pages[name].with_suffix('.html').as_posix()}{'#' + frag if frag else ''})"
        return m[0]
    return _LINK.sub(link, md)

def foreign_links(md: str) -> str:
    "Unlink relative links in an API entry: they come from docstrings inherited from other projects (pydantic's `../concepts/models.md`)."
    return _LINK.sub(lambda m: m[0] if re.match(r"https?://|#", m[2]) else m[1], md)

def frontmatter(cell: dict) -> dict:
    "The YAML frontmatter nbdev put in a raw cell (title, description, output-file), or {}."
    import yaml
    src = _text(cell.get("source")).strip()
    if cell["cell_type"] != "raw" or not src.startswith("---"): return {}
    return yaml.safe_load(src.strip("-\n")) or {}

def _markdown_cell(src: str) -> dict: return {"cell_type": "markdown", "metadata": {}, "source": src}

def plain_notebook(nb: dict, page: Path, doc_url: str, pages: dict, anchors: dict) -> dict:
    "A processed notebook as nbconvert renders it: title cell from the frontmatter, cell options applied, links relative."
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "raw" and (fm := frontmatter(cell)):
            title, desc = fm.get("title"), fm.get("description")
            if title: cells.append(_markdown_cell(f"# {title}" + (f"\n\n> {desc}" if desc else "")))
            continue
        src = _text(cell.get("source"))
        if cell["cell_type"] == "markdown":
            cells.append(_markdown_cell(relative_links(plain_markdown(src), page, doc_url, pages, anchors)))
            continue
        if cell["cell_type"] != "code": continue
        d = directives(src)
        if d.get("include") == "false": continue
        outputs = [] if d.get("output") == "false" else cell.get("outputs", [])
        body = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()
        if d.get("echo") == "false":
            mds = [_text(o.get("data", {}).get("text/markdown")) for o in outputs]
            if outputs and all(mds):       # show_doc and tables printed as markdown: page text (searchable, in the TOC)
                cells.extend(_markdown_cell(relative_links(plain_markdown(foreign_links(m) if body.startswith("show_doc(") else m),
                                                          page, doc_url, pages, anchors)) for m in mds)
                continue
            if not outputs: continue
            cell = cell | {"metadata": {"tags": ["remove_input"]}}
        if not body and not outputs: continue
        cells.append(cell | {"source": body, "outputs": outputs})
    return nb | {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                              "language_info": {"name": "python"}}}

# -- 3. the MkDocs site ----------------------------------------------------------------------------------------------

def _title(nb: dict, default: str) -> str:
    for c in nb["cells"]:
        if c["cell_type"] == "markdown" and _text(c["source"]).startswith("# "): return _text(c["source"]).splitlines()[0][2:].strip()
    return default

def mkdocs_config(cfg, nav: list, work: Path = WORK, site: Path = SITE) -> dict:
    "docs/mkdocs.yml with the generated navigation, the page folder and `_site/` filled in."
    import yaml
    conf = yaml.safe_load((DOCS / "mkdocs.yml").read_text())
    conf |= dict(site_name=cfg.get("title", cfg.lib_name), site_description=cfg.get("description", ""),
                 site_url=cfg.doc_host.rstrip("/") + cfg.doc_baseurl.rstrip("/") + "/", repo_url=cfg.git_url,
                 docs_dir=str(work), site_dir=str(site), nav=nav)
    return conf

_TOC_LINK = re.compile(r'<a href="#([^"]+)" class="md-nav__link">')
_SKIP_LINK = re.compile(r'<a href="#([^"]+)" class="md-skip">')
_HEADING = re.compile(r'<h([1-3]) id="([^"]+)">(.*?)</h\1>', re.S)

def align_heading_ids(html: str) -> str:
    "Give the notebook's headings the ids the page's table of contents links to (MkDocs' slugs, `_1` for repeats)."
    toc = list(dict.fromkeys(_TOC_LINK.findall(html)))
    heads = _HEADING.findall(html)
    if heads and heads[0][0] == "1":     # the page title: not in the TOC; the "skip to content" link has its id
        toc = [(_SKIP_LINK.findall(html) or [heads[0][1]])[0]] + toc
    if len(heads) != len(toc): return html
    slugs = iter(toc)
    def fix(m):
        new = next(slugs)
        return f'<h{m[1]} id="{new}">' + m[3].replace(f'href="#{m[2]}"', f'href="#{new}"') + f"</h{m[1]}>"
    return _HEADING.sub(fix, html)

def _postprocess(site: Path) -> None:
    "Heading ids that match the TOC, and no MathJax <script> from a CDN (no notebook uses math; the site must not need a network)."
    mathjax = re.compile(r'<script[^>]*src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"[^>]*>\s*</script>')
    for f in site.rglob("*.html"):
        html = f.read_text(encoding="utf-8")
        if (new := align_heading_ids(mathjax.sub("", html))) != html: f.write_text(new, encoding="utf-8")

def build(site: Path = SITE, work: Path = WORK, quiet: bool = False) -> Path:
    "Process every notebook, write the page sources and MkDocs config into `work` (_proc/site_src), build the site into `site` (_site)."
    import yaml
    site, work = Path(site).resolve(), Path(work).resolve()
    t0 = time.perf_counter()
    cfg = _config()
    nbs = Path(cfg.nbs_path)
    doc_url = cfg.doc_host.rstrip("/") + cfg.doc_baseurl.rstrip("/")
    sources = notebooks(cfg)
    pages = {nb.name: page_source(nb, nbs) for nb in sources}
    if work.exists(): shutil.rmtree(work)
    shutil.copytree(DOCS, work, ignore=shutil.ignore_patterns("mkdocs.yml", "overrides", "__pycache__"))
    procs, nav_stages, nav_jobs = _processors(), [], []
    home = None
    processed = {nb_path: process(nb_path, procs) for nb_path in sources}
    anchors = {pages[p.name].with_suffix(".html").as_posix(): {n.lower() for n in names} for p, (_, names) in processed.items()}
    for nb_path, (nb, _) in processed.items():
        page = pages[nb_path.name]
        nb = plain_notebook(nb, page, doc_url, pages, anchors)
        (work / page).parent.mkdir(parents=True, exist_ok=True)
        (work / page).write_text(json.dumps(nb, indent=1), encoding="utf-8")
        entry = {_title(nb, nb_path.stem): page.as_posix()}
        if page.as_posix() == "index.ipynb": home = entry
        elif page.parts[0] == "jobs": nav_jobs.append(entry)
        else: nav_stages.append(entry)
    extra = [{_md_title(p): p.relative_to(work).as_posix()} for p in sorted(work.glob("*.md"))]
    nav = [{"Home": "index.ipynb"} if home else None, {"Stages": nav_stages}, {"Jobs": nav_jobs}, *extra]
    conf_file = work.parent / "mkdocs.yml"
    conf = mkdocs_config(cfg, [n for n in nav if n], work, site)
    if (DOCS / "overrides").exists(): conf["theme"]["custom_dir"] = str(DOCS / "overrides")
    conf_file.write_text(yaml.safe_dump(conf, sort_keys=False))
    if site.exists(): shutil.rmtree(site)
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(conf_file)] + (["-q"] if quiet else [])
    subprocess.run(cmd, check=True, cwd=ROOT, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    _postprocess(site)
    (site / ".nojekyll").touch()   # GitHub Pages: serve files as they are
    if not quiet: print(f"site: {site} ({len(sources)} notebooks, {time.perf_counter() - t0:.1f} s)")
    return site

def _md_title(p: Path) -> str:
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "): return line[2:].strip()
    return p.stem

def serve(site: Path = SITE, port: int = 8000) -> None:
    "Serve the built site on loopback (what GitHub Pages would serve), until Ctrl-C."
    import functools, http.server
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"serving {site} on http://127.0.0.1:{port}/")
        httpd.serve_forever()

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", action="store_true", help="serve _site/ on loopback after building")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--site", type=Path, default=SITE, help="where the site goes (default: _site/)")
    ap.add_argument("--work", type=Path, default=WORK, help="where the page sources go (default: _proc/site_src/)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    built = build(a.site, a.work, quiet=a.quiet)
    if a.serve: serve(built, a.port)
