"""The docs site (`make docs`, tools/docs.py): built from the notebooks into a temporary folder, every notebook a page,
no broken internal link, nothing loaded from the network, source links to real lines, the CLI and the settings as their
users see them, tables that render, the jobs in run order; and a real browser (headless Chromium) that shows the home
page, a stage page with its plots, and search results, served and from disk.

The browser tests skip when Chromium, its driver or selenium is missing, unless LD_REQUIRE_BROWSER=1 (CI sets it):
then they fail. Debian: `apt-get install -y chromium chromium-driver`.
"""
import functools, http.server, json, os, re, shutil, subprocess, sys, threading
from pathlib import Path
from urllib.parse import unquote, urlsplit
import pytest
from conftest import chromium

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import docs  # noqa: E402  (tools/docs.py)

@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    "The site, built from the notebooks as `make docs` builds it, into a temporary folder."
    tmp = tmp_path_factory.mktemp("docs")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "docs.py"), "-q", "--site", str(tmp / "site"), "--work", str(tmp / "src" / "pages")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp / "site"

def _cfg():
    from configparser import ConfigParser
    c = ConfigParser(); c.read(ROOT / "settings.ini"); return c["DEFAULT"]

def _notebooks() -> list[Path]:
    "Every notebook nbdev documents: nbs/**/*.ipynb outside folders and files that start with `_` or `.`."
    nbs = ROOT / "nbs"
    return sorted(p for p in nbs.rglob("*.ipynb")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(nbs).parts) and ".ipynb_checkpoints" not in p.parts)

def _title(nb: Path) -> str:
    "The notebook's title: its first markdown heading."
    for c in json.loads(nb.read_text())["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown" and src.startswith("# "): return src.splitlines()[0][2:].strip()
    raise AssertionError(f"{nb} has no title cell")

def _visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)))

# -- the pieces of tools/docs.py --------------------------------------------------------------------------------------

def test_relative_links():
    pages = {"06_train.ipynb": Path("train.ipynb"), "train.ipynb": Path("jobs/train.ipynb")}
    anchors = {"train.html": {"train_model"}}
    url = "https://h.io/base"
    md = "[`train_model`](https://h.io/base/train.html#train_model) and [`_draw`](https://h.io/base/train.html#_draw)"
    assert docs.relative_links(md, Path("jobs/train.ipynb"), url, pages, anchors) == "[`train_model`](../train.html#train_model) and `_draw`"
    assert docs.relative_links("[home](https://h.io/base/)", Path("x.ipynb"), url, pages, anchors) == "[home](index.html)"
    assert docs.relative_links("see [it](nbs/06_train.ipynb#the-split)", Path("x.ipynb"), url, pages, anchors) == "see [it](train.html#the-split)"
    assert docs.relative_links("[x](https://other.org/a.ipynb)", Path("x.ipynb"), url, pages, anchors) == "[x](https://other.org/a.ipynb)"
    assert docs.foreign_links("[Models](../concepts/models.md), [web](https://a.b), [here](#x)") == "Models, [web](https://a.b), [here](#x)"

def test_directives_and_quarto_links():
    assert docs.directives("#| echo: false\n#| output: asis\nshow_doc(f)") == {"echo": "false", "output": "asis"}
    assert docs.directives("x = 1\n#| hide") == {}
    assert docs.plain_markdown('[source](https://g/x.py#L3){target="_blank" style="float:right"}') == \
        '<a href="https://g/x.py#L3" class="nbdev-source" target="_blank">source</a>'

def test_align_heading_ids():
    html = ('<a href="#a-b" class="md-skip"><a href="#step" class="md-nav__link"><a href="#step_1" class="md-nav__link">'
            '<h1 id="A-b">A b</h1><h2 id="step">Step<a class="anchor-link" href="#step">¶</a></h2><h2 id="step">Step</h2>')
    out = docs.align_heading_ids(html)
    assert '<h1 id="a-b">' in out and '<h2 id="step">Step<a class="anchor-link" href="#step">' in out and '<h2 id="step_1">' in out
    assert docs.align_heading_ids(html.replace('<h2 id="step">Step</h2>', "")) == html.replace('<h2 id="step">Step</h2>', "")  # counts differ: untouched

def test_table_pipes_and_remote_images():
    row = "| Monitoring | `--fail-on warn\\|alert`, `--x` | a\\|b |"
    assert docs.table_pipes(row) == "| Monitoring | <code>--fail-on warn&#124;alert</code>, `--x` | a\\|b |"
    assert docs.table_pipes("not a row: `a\\|b`") == "not a row: `a\\|b`"           # outside tables: as written
    assert docs.offline_images("see [![ci](https://g.io/b.svg)](https://g.io/ci) ![plot](p.png)") == "see [ci](https://g.io/ci) ![plot](p.png)"
    assert docs.offline_images("[![ci](https://g.io/b.svg)](https://g.io/ci)\nText") == "Text"      # a line of badges: left out

def test_keep_intro():
    from execnb.nbio import mk_cell
    from fastcore.basics import AttrDict
    nb = AttrDict(cells=[mk_cell("# Job: train\nTrains a model\non the clean rows.\n\nMore text.", "markdown"), mk_cell("x = 1")])
    docs.keep_intro(nb)
    assert [c.source for c in nb.cells] == ["# Job: train\n> Trains a model on the clean rows.", "More text.", "x = 1"]
    nb = AttrDict(cells=[mk_cell("# Drift\n> PSI and charts.\n\nWhy we bin.", "markdown")])
    docs.keep_intro(nb)                                     # a summary already: the rest is a cell of its own
    assert [c.source for c in nb.cells] == ["# Drift\n> PSI and charts.", "Why we bin."]

def test_job_rank_is_run_order():
    jobs = ["drift", "register", "stats", "train", "validate", "zeta"]
    assert sorted(jobs, key=docs.job_rank) == ["validate", "stats", "train", "register", "drift", "zeta"]

def test_click_entry():
    import click
    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def tool(): "A tool."
    @tool.command()
    @click.option("--out", required=True, type=click.Path(), help="File to write")
    @click.option("--level", type=click.Choice(["warn", "alert"]), default="warn", help="Status <at least>")
    @click.option("--old-name", hidden=True)
    @click.argument("job")
    def check(out, level, old_name, job): "Check a thing."
    md = docs.click_entry(check, "check", root=tool)
    assert md.startswith("### check\n\n```\nUsage: ") and " check [OPTIONS] JOB" in md and "Check a thing." in md
    assert "| <code>--out</code> | PATH | required | File to write |" in md
    assert "| <code>--level</code> | [warn&#124;alert] | warn | Status &lt;at least&gt; |" in md   # the pipe cannot end the cell
    assert "--old-name" not in md and "--help" not in md                                   # hidden; --help said in the group
    group = docs.click_entry(tool, "tool", root=tool)
    assert "[<code>check</code>](#check) | Check a thing. |" in group and "<code>-h</code>, <code>--help</code>" in group

def test_settings_entry():
    from pydantic import Field
    from pydantic_settings import BaseSettings, SettingsConfigDict
    class Demo(BaseSettings):
        "Demo settings."
        model_config = SettingsConfigDict(env_prefix="XY_")
        share: float = Field(0.05, ge=0, le=1, description="A share | of rows")
        where: str | None = Field(None, description="A `path|url`")
        runs: str = Field("runs/a/b", description="Runs")
    md = docs.settings_entry(Demo, "Demo")
    assert "| <code>XY_SHARE</code> | <code>float</code> ≥ 0, ≤ 1 | <code>0.05</code> | A share &#124; of rows |" in md
    assert "| <code>XY_WHERE</code> | <code>str &#124; None</code> | unset | A <code>path&#124;url</code> |" in md
    assert "| <code>XY_RUNS</code> | <code>str</code> | <code>runs/<wbr>a/<wbr>b</code> | Runs |" in md   # a long path may break
    assert "_case_sensitive" not in md and "_env_file" not in md

def test_source_line_of_a_command_made_by_a_call():
    from loan_default import cli
    path, line = docs.source_line(cli.promote, "promote", cli)
    assert path == ROOT / "loan_default" / "cli.py" and path.read_text().splitlines()[line - 1].startswith("promote = ")
    path, line = docs.source_line(cli.validate, "validate", cli)    # a decorated command: its first decorator
    assert path.read_text().splitlines()[line - 1].startswith("@cli.command")
    assert docs.source_line(len) is None                             # not this project's

# -- the built files ---------------------------------------------------------------------------------------------------

def test_every_notebook_has_a_page(site):
    nbs = ROOT / "nbs"
    assert len(_notebooks()) >= 15
    for nb in _notebooks():
        page = site / docs.page_source(nb, nbs).with_suffix(".html")
        assert page.exists(), f"{nb.relative_to(ROOT)} has no page ({page.relative_to(site)})"
        text = _visible_text(page.read_text(encoding="utf-8"))
        title = re.sub(r"`", "", _title(nb))
        assert title in text, f"{page.name}: title {title!r} not on the page"

def test_home_page_is_the_index_notebook(site):
    text = _visible_text((site / "index.html").read_text(encoding="utf-8"))
    assert "Loan-default prediction, notebook-first" in text
    assert "LD_MAX_REJECT_SHARE" in text                  # the settings table, an output of index.ipynb

def test_api_reference_for_every_exported_function(site):
    "Each exported name of a module has its show_doc entry (an element with nbdev's anchor) on its notebook's page."
    import importlib
    nbs = ROOT / "nbs"
    for nb in _notebooks():
        m = re.search(r"#\|\s*default_exp\s+([\w.]+)", nb.read_text())
        if not m: continue
        mod = importlib.import_module(f"loan_default.{m[1]}")
        html = (site / docs.page_source(nb, nbs).with_suffix(".html")).read_text(encoding="utf-8")
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        source = Path(mod.__file__).read_text()
        documented = [n for n in mod.__all__ if re.search(rf"^(?:async )?(?:def|class) {n}\b", source, re.M)]   # what show_doc covers
        missing = [n for n in documented if n.lower() not in ids]
        assert not missing, f"{nb.name}: no API entry for {missing}"

def test_plots_are_in_the_pages(site):
    html = (site / "train.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 5    # ROC, PR, calibration, scores, importance

_SOURCE_LINK = re.compile(r'<a\b(?=[^>]*\bclass="nbdev-source")[^>]*\bhref="([^"]*)"')

def test_source_links_point_at_real_lines(site):
    "Every API entry's source link ends in `#L<n>`, and line n of that file in this repository starts a definition."
    prefix = _cfg()["git_url"].rstrip("/") + f"/blob/{_cfg()['branch']}/"
    links = [(f, url) for f in site.rglob("*.html") for url in _SOURCE_LINK.findall(f.read_text(encoding="utf-8"))]
    assert len(links) > 150
    assert not [u for _, u in links if u.endswith("#LNone")]
    bad = []
    for f, url in links:
        m = re.fullmatch(re.escape(prefix) + r"(.+)#L(\d+)", url)
        if not m: bad.append(f"{f.name}: {url} (no line)"); continue
        lines = (ROOT / m[1]).read_text().splitlines()
        line = lines[int(m[2]) - 1] if int(m[2]) <= len(lines) else ""
        if not re.match(r"\s*(?:@|def |async def |class |[A-Za-z_]\w*\s*(?::[^=]+)?=)", line): bad.append(f"{f.name}: {url} -> {line!r}")
    assert not bad, bad[:10]

def _entry(html: str, name: str) -> str:
    "The HTML of one API entry: from its heading to the next entry's rule."
    start = html.index(f'id="{name}"')
    end = html.find("<hr", start)
    return html[start:end if end > 0 else None]

def test_cli_page_shows_every_command_from_click(site):
    "Each command has an entry with its usage line and every option click shows in --help, with its help text."
    import click
    from loan_default.cli import cli
    html = (site / "cli.html").read_text(encoding="utf-8")
    assert "Command.__call__" not in html
    group = _visible_text(_entry(html, "cli"))
    for name, cmd in cli.commands.items():
        if cmd.hidden: continue
        assert name in group
        entry = _entry(html, name)
        text = _visible_text(entry)
        assert f"Usage: loan-default {name} [OPTIONS]" in text, name
        ctx = click.Context(cmd, info_name=name)
        for p in cmd.get_params(ctx):
            if isinstance(p, click.Option) and not p.hidden and p is not cmd.get_help_option(ctx):
                assert all(f"<code>{o}</code>" in entry for o in p.opts), (name, p.opts)
                assert not p.help or p.help.split()[0] in text, (name, p.opts)
    assert "<code>--out</code>" in _entry(html, "validate") and "<code>--data</code>" in _entry(html, "train")
    if any(o.opts == ["--model"] for o in cli.commands["register"].params): assert "<code>--model</code>" in _entry(html, "register")

def test_settings_page_shows_environment_variables(site):
    from loan_default.config import Settings
    html = (site / "config.html").read_text(encoding="utf-8")
    entry = _entry(html, "settings")
    for name in Settings.model_fields: assert f"<code>LD_{name.upper()}</code>" in entry, name
    assert "LD_MAX_REJECT_SHARE" in _visible_text(entry) and "0.05" in _visible_text(entry)
    for internal in ("_cli_parse_args", "_case_sensitive", "__pydantic_self__", "_env_file_encoding"):
        assert internal not in html, internal

def test_tables_show_no_escaped_pipes(site):
    "A `\\|` written for GitHub's tables shows as a pipe, in every table of the site."
    bad = [f"{f.relative_to(site)}: {t[:80]}" for f in site.rglob("*.html")
           for t in re.findall(r"<table\b.*?</table>", f.read_text(encoding="utf-8"), re.S) if "\\|" in _visible_text(t)]
    assert not bad, bad[:5]
    assert "--fail-on warn|alert" in _visible_text((site / "index.html").read_text(encoding="utf-8"))

RUN_ORDER = ["validate", "stats", "train", "register", "drift"]   # the jobs as the pipeline runs them, then drift

def test_job_pages_in_run_order_with_their_paragraph(site):
    html = (site / "index.html").read_text(encoding="utf-8")
    nav = html[html.index("md-nav--primary"):]
    jobs = list(dict.fromkeys(re.findall(r'href="jobs/(\w+)\.html"', nav)))
    assert jobs[:len(RUN_ORDER)] == RUN_ORDER, jobs
    for job in jobs:
        cells = [("".join(c["source"])) for c in json.loads((ROOT / "nbs" / "jobs" / f"{job}.ipynb").read_text())["cells"]
                 if c["cell_type"] == "markdown"]
        rest = cells[0].partition("\n")[2].strip()         # under the title, in its cell (nbdev's frontmatter would drop it)
        paragraph = (rest or (cells[1] if len(cells) > 1 else "")).strip().split("\n\n")[0].removeprefix("> ")
        assert paragraph, f"jobs/{job}.ipynb: no paragraph under its title (what the job does, its inputs and outputs)"
        page = (site / "jobs" / f"{job}.html").read_text(encoding="utf-8")
        h1 = page.index("<h1")
        intro = page[h1:page.index("jp-CodeCell", h1)] if "jp-CodeCell" in page[h1:] else page[h1:]   # before the first code
        letters = lambda x: "".join(_visible_text(x.replace("`", "")).split())   # markdown and HTML space code differently
        assert letters(paragraph)[:50] in letters(intro), (job, paragraph[:60])
        if rest and not rest.startswith(">"): assert "<blockquote>" in intro, job    # shown as the page's summary

def _links(site: Path):
    for f in site.rglob("*.html"):
        html = f.read_text(encoding="utf-8")
        for m in re.finditer(r'<(?:a|link|img|script|iframe|source)\b[^>]*?\b(?:href|src)="([^"]*)"', html):
            yield f, m[1]

def test_no_broken_internal_link(site):
    base = _cfg()["doc_baseurl"].rstrip("/") + "/"       # 404.html links from the site root GitHub Pages serves it at
    ids, broken, checked = {}, [], 0
    def ids_of(p):
        if p not in ids: ids[p] = set(re.findall(r'\bid="([^"]+)"', p.read_text(encoding="utf-8")))
        return ids[p]
    for page, url in _links(site):
        u = urlsplit(url)
        if u.scheme or url.startswith("//"): continue
        path = unquote(u.path)
        target = (site / path[len(base):]) if path.startswith(base) else (page.parent / path if path else page)
        target = target.resolve()
        if target.is_dir(): target = target / "index.html"
        checked += 1
        if not target.exists(): broken.append(f"{page.relative_to(site)}: {url} (no file)")
        elif u.fragment and target.suffix == ".html" and u.fragment not in ids_of(target):
            broken.append(f"{page.relative_to(site)}: {url} (no id {u.fragment!r})")
    assert checked > 1000
    assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken[:40])

def test_site_needs_no_network(site):
    "Nothing the browser loads by itself (scripts, styles, images, frames) comes from another host."
    external = [f"{p.relative_to(site)}: {tag}" for p in site.rglob("*.html")
                for tag in re.findall(r'<(?:script|img|iframe|source)\b[^>]*\bsrc="(?:https?:)?//[^"]+"[^>]*>|<link\b[^>]*\bhref="(?:https?:)?//[^"]+"[^>]*>',
                                      p.read_text(encoding="utf-8"))
                if "<link" not in tag or re.search(r'rel="(?:stylesheet|preload|icon|modulepreload)"', tag)]
    assert not external, external[:10]

def test_search_index_covers_every_page(site):
    index = json.loads((site / "search" / "search_index.json").read_text())
    pages = {d["location"].split("#")[0] for d in index["docs"]}
    nbs = ROOT / "nbs"
    for nb in _notebooks():
        assert docs.page_source(nb, nbs).with_suffix(".html").as_posix() in pages, nb.name
    assert any("register" in d["location"] for d in index["docs"])

# -- a real browser ----------------------------------------------------------------------------------------------------

CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900"]

@pytest.fixture(scope="session")
def served(site):
    "The site over HTTP on loopback, as GitHub Pages would serve it."
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown(); httpd.server_close()

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    "Headless Chromium (conftest.chromium) with a fresh profile."
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), CHROME_FLAGS)
    yield driver
    driver.quit()

def _wait(driver, condition, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(condition)

def test_browser_home_page(browser, served):
    from selenium.webdriver.common.by import By
    browser.get(served + "/index.html")
    h1 = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "article h1"))
    assert h1.is_displayed() and h1.text.strip() == "loan_default"
    body = browser.find_element(By.TAG_NAME, "article").text
    assert "Two commands" in body and "make test" in body
    nav = [a.get_attribute("textContent").strip() for a in browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link")]
    for title in ("Training", "The model registry", "Model cards", "Job: train a model"):
        assert title in nav, nav

def test_browser_stage_page_shows_its_plots(browser, served):
    from selenium.webdriver.common.by import By
    browser.get(served + "/train.html")
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "article h1").text.strip() == "Training")
    article = browser.find_element(By.TAG_NAME, "article")
    assert "train_model" in article.text and "Split, search, calibrate" in article.text
    imgs = browser.find_elements(By.CSS_SELECTOR, "article .jp-OutputArea-output img")
    assert len(imgs) >= 5
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", imgs[0])
    _wait(browser, lambda d: all(d.execute_script("return arguments[0].complete", i) for i in imgs))
    sizes = [browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", i) for i in imgs]
    assert all(w > 100 and h > 100 for w, h in sizes), sizes      # decoded images, not broken icons
    assert imgs[0].is_displayed() and imgs[0].size["width"] > 100
    sig = browser.find_element(By.ID, "train_model")                # the API entry nbdev's doc links point at
    assert sig.text.startswith("train_model")

def test_browser_search_finds_a_function(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    browser.get(served + "/index.html")
    box = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "input.md-search__input"))
    _wait(browser, lambda d: box.is_displayed())
    box.click()
    box.send_keys("log_model_card")
    results = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item a") or False, timeout=20)
    hrefs = [r.get_attribute("href") for r in results]
    assert any("model_card.html" in h for h in hrefs), hrefs
    box.send_keys(Keys.ESCAPE)


def test_browser_search_from_disk(browser, site):
    "Search works on the site opened from disk (file://), as the README suggests: the index is a script, the worker an iframe."
    from selenium.webdriver.common.by import By
    browser.get((site / "index.html").as_uri())
    box = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "input.md-search__input"))
    _wait(browser, lambda d: box.is_displayed())
    box.click()
    box.send_keys("drift_command")
    results = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item a") or False, timeout=30)
    hrefs = [r.get_attribute("href") for r in results]
    assert any(h.startswith("file://") and "/drift.html" in h for h in hrefs), hrefs

def test_browser_wide_figures_fit_the_content(browser, served):
    "No figure is wider than the column it sits in (the drift page's, the training page's)."
    from selenium.webdriver.common.by import By
    for page in ("drift.html", "train.html"):
        browser.get(f"{served}/{page}")
        imgs = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "article .jp-OutputArea-output img") or False)
        _wait(browser, lambda d: all(d.execute_script("return arguments[0].complete", i) for i in imgs))
        article = browser.find_element(By.TAG_NAME, "article").size["width"]
        assert all(0 < i.size["width"] <= article for i in imgs), (page, article, [i.size for i in imgs])
