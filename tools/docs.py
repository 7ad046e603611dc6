"""Build the documentation site offline from the notebooks into `_site/` (`make docs`).

    python tools/docs.py            # process the notebooks, then build _site/ with MkDocs (open _site/index.html)
    python tools/docs.py --serve    # the same, then serve _site/ on http://127.0.0.1:8001 (Ctrl-C stops; the API keeps 8000)
    python tools/docs.py --site DIR --work DIR2   # elsewhere (the tests build into a temporary folder)

Where Quarto is installed, `nbdev_docs` builds nbdev's own site from the same notebooks and settings.ini. Quarto cannot
be installed here, so this script does what nbdev_docs does before Quarto and hands the result to a static site
generator that installs from PyPI (mkdocs-material + mkdocs-jupyter):

1. Each notebook in nbs/ (and nbs/jobs/) goes through nbdev's processors (`FilterDefaults`): frontmatter from the title
   cell, a `show_doc` cell after every exported definition (the API reference, in place of the exported source),
   `#| hide` cells removed, doc links for backticked names. Changes to nbdev's processing:
   - the `show_doc` cells are filled from the installed package (nbdev_export built it from the same cells), not by
     nbdev's `exec_show_docs`, which re-runs every exported cell in a fresh shell;
   - a click command is shown as its `--help` shows it (usage line; options with type, default and help), a
     pydantic-settings class as its environment variables (`LD_...`, type, default, meaning), not as the constructor's
     signature; a click command made by a call (`promote = _alias_command(...)`) gets an entry too;
   - each entry's source link points at its line (`#L123`: nbdev's lookup finds no line for this package's names);
   - the text under a notebook's `# title` that nbdev's frontmatter drops (a job's paragraph) is kept as the page's intro.
2. The processed notebooks are made plain for nbconvert: Quarto cell options (`#| echo: false`, `output: asis`) become
   markdown cells or cell tags, nbdev's absolute doc links (`doc_host` + `doc_baseurl`) become relative links, a code
   span with `\\|` in a table row becomes HTML code (nbconvert would print the backslash), images from other hosts
   become their alt text. Pages are named as nbdev names them (`07_registry.ipynb` -> `registry.html`), so doc links
   mean the same on both sites. The job pages are listed in run order (the pipeline's, then drift).
3. MkDocs (`--strict`) renders the pages with their saved outputs (nothing is executed), adds the navigation, the extra
   pages in docs/ and a client-side search index, also as a script (the theme's `offline` plugin) that
   docs/javascripts/iframe-worker.js searches when the site is opened from disk. Afterwards the headings get the ids the
   table of contents links to, and the MathJax `<script>` nbconvert adds (a CDN URL) is removed, as no notebook uses
   math: the site needs no network to build or to read. tests/test_docs.py checks the result, in headless Chromium too.
"""
import argparse, functools, json, os, re, shutil, subprocess, sys, time, warnings
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
    from nbdev.processors import FilterDefaults, exec_show_docs, insert_warning, add_show_docs, _default_exp, _want_doc
    from nbdev.process import Processor
    from execnb.nbio import mk_cell
    from nbdev.config import get_config

    def module_of(nb):
        with warnings.catch_warnings():   # importing the package: MLflow's notes about type hints are not the docs' business
            warnings.simplefilter("ignore")
            return import_module(f"{get_config().lib_name}.{exp}") if (exp := _default_exp(nb)) else None

    class add_command_docs(Processor):
        "A `show_doc` cell after each exported cell that makes a public click command by a call (`promote = _alias_command(...)`):"
        "nbdev adds them only for `def` and `class`."
        def begin(self):
            import ast, click
            if not (mod := module_of(self.nb)): return
            for cell in reversed([c for c in self.nb.cells if _want_doc(c)]):
                names = [t.id for node in (cell.parsed_() or []) if isinstance(node, ast.Assign) for t in node.targets
                         if isinstance(t, ast.Name) and not t.id.startswith("_") and isinstance(getattr(mod, t.id, None), click.Command)]
                for name in reversed(names): self.nb.cells.insert(cell.idx_ + 1, mk_cell(f"show_doc({name})"))

    class show_doc_from_package(Processor):
        "Fill `show_doc(...)` cells from the exported module (the package nbdev_export built), with `api_entry`."
        def begin(self):
            self.mod, self.nb.doc_names_ = module_of(self.nb), []
            self.ns = vars(self.mod) if self.mod else {}
        def cell(self, cell):
            src = "\n".join(l for l in (cell.source or "").splitlines() if not l.startswith("#|")).strip()
            if cell.cell_type != "code" or not src.startswith("show_doc(") or not getattr(self.nb, "has_docs_", False): return
            obj, name, kwargs = _show_doc_call(src, self.ns)
            md = api_entry(obj, name, self.mod, **kwargs)
            if name: self.nb.doc_names_.append(name)
            if name and "." in name: md = f'<span id="{name.lower()}"></span>\n\n' + md   # nbdev's anchor for a method
            cell.outputs = [AttrDict(output_type="display_data", metadata={},
                                     data=AttrDict({"text/markdown": md.splitlines(keepends=True), "text/plain": [src]}))]

    class Procs(FilterDefaults):
        def base_procs(self):
            swap = {exec_show_docs: show_doc_from_package}
            procs = [swap.get(p, p) for p in super().base_procs() if p is not insert_warning]
            return procs[:procs.index(add_show_docs) + 1] + [add_command_docs] + procs[procs.index(add_show_docs) + 1:]
    return Procs

def _show_doc_call(src: str, ns: dict) -> tuple:
    "The object, the name it is documented under (None for an expression) and the other arguments of `show_doc(...)`."
    import ast
    call = ast.parse(src).body[0].value
    obj = eval(ast.unparse(call.args[0]), dict(ns))
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    name = kwargs.pop("name", None) or (ast.unparse(call.args[0]) if re.fullmatch(r"[\w.]+", ast.unparse(call.args[0])) else None)
    return obj, name, kwargs

# -- API entries: nbdev's show_doc, with click commands and pydantic classes shown as their users see them ---------------

def api_entry(obj, name: str | None, module=None, **kwargs) -> str:
    "The markdown of one API entry: a click command's usage and options, a settings class's variables, a pydantic model's"
    "fields, else nbdev's show_doc; each with a source link to its line."
    import click
    from pydantic import BaseModel
    from pydantic_settings import BaseSettings
    from nbdev.showdoc import show_doc
    title = name or getattr(obj, "__qualname__", None) or getattr(obj, "name", "")
    if isinstance(obj, click.Command): body = click_entry(obj, title)
    elif isinstance(obj, type) and issubclass(obj, BaseSettings): body = settings_entry(obj, title)
    elif isinstance(obj, type) and issubclass(obj, BaseModel) and obj.model_fields: body = model_entry(obj, title)
    else: body = _SOURCE.sub("", show_doc(_evaluable(obj), name=name, **kwargs)._repr_markdown_()).removeprefix("---\n\n")
    url = source_url(obj, name, module)
    link = f'[source]({url}){{target="_blank" style="float:right; font-size:smaller"}}\n\n' if url else ""
    return "---\n\n" + link + body

class _Unresolved:
    "An annotation written as a string that names what the module imports only inside functions (`-> \"pd.DataFrame\"`)."
    def __init__(self, text: str): self.text = text
    def __repr__(self): return self.text

def _evaluable(obj):
    "`obj`, or for a function with a string annotation its module cannot resolve, a copy whose annotation shows the text as"
    "written (show_doc evaluates annotations, and the project imports heavy libraries inside functions)."
    import types
    notes = getattr(obj, "__annotations__", None)
    if not isinstance(obj, types.FunctionType) or not notes: return obj
    def resolves(v):
        try: eval(v, obj.__globals__); return True
        except Exception: return False
    if all(not isinstance(v, str) or resolves(v) for v in notes.values()): return obj
    copy = types.FunctionType(obj.__code__, obj.__globals__, obj.__name__, obj.__defaults__, obj.__closure__)
    copy.__kwdefaults__, copy.__doc__, copy.__qualname__, copy.__module__ = obj.__kwdefaults__, obj.__doc__, obj.__qualname__, obj.__module__
    copy.__annotations__ = {k: _Unresolved(v) if isinstance(v, str) and not resolves(v) else v for k, v in notes.items()}
    return copy

_SOURCE = re.compile(r'\[source\]\([^)]*\)\{target="_blank"[^}]*\}\n*')

@functools.cache
def definition_lines(path: Path) -> dict:
    "Where each top-level name of a module is defined: functions and classes (from their first decorator), their methods"
    "(`Class.method`), nbdev's `@patch` functions (`Class.method`), and assigned names; {name: line}."
    import ast
    from nbdev.doclinks import patch_name
    def start(node): return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    lines = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for n in [node.name, *([patch_name(node)] if patch_name(node) else [])]: lines.setdefault(n, start(node))
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): lines.setdefault(f"{node.name}.{sub.name}", start(sub))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name): lines.setdefault(t.id, node.lineno)
    return lines

def _defined(obj):
    "What holds `obj`'s code: a click command's callback, a property's getter, the function under decorators."
    import click, inspect
    if isinstance(obj, click.Command): obj = obj.callback
    if isinstance(obj, property): obj = obj.fget
    if isinstance(obj, (classmethod, staticmethod)): obj = obj.__func__
    try: return inspect.unwrap(obj)
    except ValueError: return obj

def source_line(obj, name: str | None = None, module=None) -> tuple[Path, int] | None:
    "The file and line where `obj` is defined in this project (the name it is documented under, first; then its own"
    "qualified name; then Python's own `inspect`), or None for an object from elsewhere."
    import inspect
    real = _defined(obj)
    candidates = []
    if module is not None and name: candidates.append((getattr(module, "__file__", None), name))
    try: path = inspect.getsourcefile(real)
    except TypeError: path = getattr(sys.modules.get(getattr(real, "__module__", ""), None), "__file__", None)
    candidates.append((path, getattr(real, "__qualname__", None)))
    for file, n in candidates:
        if not file or not n or not Path(file).resolve().is_relative_to(ROOT): continue
        if (line := definition_lines(Path(file).resolve()).get(n)): return Path(file).resolve(), line
    if path and Path(path).resolve().is_relative_to(ROOT):
        try: return Path(path).resolve(), inspect.getsourcelines(real)[1]
        except (OSError, TypeError): pass
    return None

def source_url(obj, name: str | None = None, module=None) -> str | None:
    "The link to `obj`'s line in the repository (settings.ini's `git_url` and `branch`), or None."
    from nbdev.config import get_config
    if not (found := source_line(obj, name, module)): return None
    cfg = get_config()
    return f"{cfg.git_url.rstrip('/')}/blob/{cfg.branch}/{found[0].relative_to(ROOT).as_posix()}#L{found[1]}"

def _code(text) -> str:
    "Inline code that is safe in a markdown table cell (a `|` would end the cell)."
    import html
    return f"<code>{html.escape(str(text), quote=False).replace('|', '&#124;')}</code>"

def _cell(md) -> str:
    "Markdown text for a table cell: one line; `<` and `|` outside code spans as entities (a bare `|` would end the"
    "cell, `<timestamp>` would be read as HTML), a code span holding a `|` as HTML."
    import html
    parts = re.split(r"(`[^`]*`)", " ".join(str(md).split()))
    return "".join((_code(p[1:-1]) if "|" in p else p) if p.startswith("`") and len(p) > 1 else html.escape(p, quote=False).replace("|", "&#124;")
                   for p in parts)

def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows])

def click_entry(cmd, name: str, root=None) -> str:
    "A click command as its `--help` shows it, from click itself: the usage line, the help text, a table of its parameters"
    "(name, type, default, help; hidden ones left out) and, for a group, its commands."
    import click
    prog, group = console_script()
    root = root or group
    def context(c, **kw): return click.Context(c, **{**c.context_settings, **kw, "show_default": True})   # defaults as values
    parent = context(root, info_name=prog) if root is not None and cmd in root.commands.values() else None
    ctx = context(cmd, info_name=cmd.name if parent else prog, parent=parent)
    out = [f"### {name}", ""]
    if cmd.name and cmd.name != name: out += [f'<a id="{cmd.name}"></a>', ""]   # the command's own name as an anchor too: `export-predictions`
    out += ["```", ctx.get_usage(), "```", ""]
    if cmd.help: out += [inspect_cleandoc(cmd.help), ""]
    rows, help_option = [], cmd.get_help_option(ctx)
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False) or p is help_option: continue   # --help: said once, in the group's entry
        if isinstance(p, click.Argument):
            rows.append([_code(p.make_metavar(ctx)), "argument", "required" if p.required else "", _cell(getattr(p, "help", None) or "")])
            continue
        extra = p.get_help_extra(ctx)
        names = ", ".join(_code(o) for o in p.opts + p.secondary_opts)
        kind = "flag" if p.is_flag and not p.count else p.make_metavar(ctx).removesuffix(" RANGE") + (f" ({extra['range']})" if "range" in extra else "")
        default = "required" if p.required else extra.get("default", "")
        rows.append([names, _cell(kind), _cell(default), _cell(p.help or "")])
    if rows: out += [_table(["Option", "Type", "Default", "Help"], rows), ""]
    if isinstance(cmd, click.Group):
        cmds = [[f"[{_code(n)}](#{n.lower()})", _cell(c.get_short_help_str(120))] for n, c in cmd.commands.items() if not c.hidden]
        out += [_table(["Command", "What it does"], cmds), "",
                f"Every command takes {', '.join(_code(o) for o in ctx.help_option_names)}: its usage and options, as below.", ""]
    return "\n".join(out)

@functools.cache
def console_script() -> tuple:
    "The console script settings.ini declares (`loan-default=loan_default.cli:main`): its name and the click group it runs."
    import click
    from importlib import import_module
    from nbdev.config import get_config
    script = (get_config().get("console_scripts", "") or "").split()
    if not script or "=" not in script[0]: return "cli", None
    prog, _, target = script[0].partition("=")
    mod_name, _, attr = target.partition(":")
    mod = import_module(mod_name)
    entry = getattr(mod, attr, None)
    groups = [entry] if isinstance(entry, click.Group) else [v for v in vars(mod).values() if isinstance(v, click.Group)]
    return prog, (groups[0] if groups else None)

def inspect_cleandoc(text: str) -> str:
    "A docstring or click help text without its indentation and click's `\\b` (no-rewrap) markers."
    import inspect
    return inspect.cleandoc(text).replace("\b\n", "")

def _type_text(annotation) -> str:
    "A field's type as a reader writes it: `float | None`, `Path`, `Literal['policy', 'none']`."
    import inspect
    return re.sub(r"\b(?:[a-z_][\w]*\.)+(?=[A-Za-z_])", "", inspect.formatannotation(annotation))

def _bounds(field) -> str:
    "A field's bounds and pattern as table-cell HTML (`&gt; 0`, `≥ 0, ≤ 1`), from pydantic's metadata."
    marks = {"gt": "&gt; {}", "ge": "≥ {}", "lt": "&lt; {}", "le": "≤ {}", "pattern": "matching {}"}
    found = [marks[k].format(_code(v) if k == "pattern" else v) for m in field.metadata for k in marks if (v := getattr(m, k, None)) is not None]
    return ", ".join(found)

def _default_value(field) -> str:
    from pydantic import SecretStr
    from pydantic_core import PydanticUndefined
    v = field.get_default(call_default_factory=True)
    if v is PydanticUndefined: return "required"
    if isinstance(v, SecretStr): return "unset" if not v.get_secret_value() else "(secret)"
    if v is None or v == "": return "unset"
    code = _code(str(v).lower() if isinstance(v, bool) else v)
    return "<code>" + code[len("<code>"):-len("</code>")].replace("/", "/<wbr>") + "</code>"   # a long path may break after a /

def _own_doc(cls) -> str:
    "The class's own docstring: not the one pydantic's BaseModel would lend it (its internals)."
    return inspect_cleandoc(cls.__dict__.get("__doc__") or "")

def model_entry(cls, name: str) -> str:
    "A pydantic model (a request or response body) as its fields: JSON name, type, default and description; not the"
    "constructor's `**data`."
    out = [f"### {name}", ""] + ([_own_doc(cls), ""] if _own_doc(cls) else [])
    rows = [[_code(f.alias or n), " ".join(filter(None, [_code(_type_text(f.annotation)), _bounds(f)])), _default_value(f), _cell(f.description or "")]
            for n, f in cls.model_fields.items()]
    return "\n".join(out + [_table(["Field", "Type", "Default", "Meaning"], rows), ""])

def settings_entry(cls, name: str) -> str:
    "A pydantic-settings class as its users set it: each field's environment variable (`LD_...`), type, default and"
    "description, grouped by the class that declares it; not the constructor's `_case_sensitive`, `_env_file`, ... ."
    prefix = cls.model_config.get("env_prefix", "") or ""
    out = [f"### {name}", ""]
    if _own_doc(cls): out += [_own_doc(cls), ""]
    if (env_file := cls.model_config.get("env_file")): out += [f"Set each as an environment variable or in `{env_file}`.", ""]
    groups: dict = {}
    for field_name, field in cls.model_fields.items():
        owner = next((c for c in cls.__mro__ if field_name in c.__dict__.get("__annotations__", {})), cls)
        groups.setdefault(owner, []).append((field_name, field))
    for owner, fields in groups.items():
        if len(groups) > 1: out += [f"**{(_own_doc(owner) or owner.__name__).splitlines()[0]}**", ""]
        rows = [[_code(f"{prefix}{n}".upper()),   # pydantic-settings reads environment variables case-insensitively
                 " ".join(filter(None, [_code(_type_text(f.annotation)), _bounds(f)])), _default_value(f), _cell(f.description or "")]
                for n, f in fields]
        out += [_table(["Variable", "Type", "Default", "Meaning"], rows), ""]
    return "\n".join(out)

_FM_LINE = re.compile(r"#\s+\S|>\s+\S|-\s+\S.*:.*\S")   # what nbdev's frontmatter takes from a title cell: title, > summary, - key: value

def keep_intro(nb) -> None:
    "nbdev turns the first markdown cell with a `# title` into frontmatter and drops the rest of that cell (a job's"
    "paragraph saying what it does). Keep the rest: its first paragraph becomes the page's summary (the intro under the"
    "title, as a `> summary` line is) unless the cell has one; any further text becomes a cell of its own after it."
    from nbdev.frontmatter import _md2dict
    from execnb.nbio import mk_cell
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or not _md2dict(cell.source or ""): continue
        lines = (cell.source or "").splitlines()
        head, rest = [l for l in lines if _FM_LINE.match(l)], "\n".join(l for l in lines if not _FM_LINE.match(l)).strip()
        if rest and not any(l.startswith(">") for l in head):
            first, _, rest = rest.partition("\n\n")
            if re.match(r"\s*(?:[-*+|#`<]|\d+\.)", first): first, rest = "", (first + "\n\n" + rest).strip()  # not a plain paragraph
            if first: head.append("> " + " ".join(first.split()))
        cell.source = "\n".join(head)
        if rest.strip(): nb.cells.insert(i + 1, mk_cell(rest.strip(), "markdown"))
        return

def process(nb_path: Path, procs) -> tuple[dict, list]:
    "The notebook after nbdev's doc processors, as a plain dict, and the names its `show_doc` cells document."
    from execnb.nbio import read_nb, nb2dict
    nb = read_nb(nb_path)
    keep_intro(nb)
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

_TABLE_CODE_PIPE = re.compile(r"`([^`\n]*\\\|[^`\n]*)`")

def table_pipes(md: str) -> str:
    "In a table row, a code span with an escaped pipe (`` `warn\\|alert` ``, as GitHub reads it) becomes HTML code with the"
    "pipe: nbconvert's markdown keeps the backslash inside code spans."
    return "\n".join(_TABLE_CODE_PIPE.sub(lambda m: _code(m[1].replace("\\|", "|")), l) if l.lstrip().startswith("|") else l
                     for l in md.split("\n"))

_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)\s]+\)")
_BADGE_LINE = re.compile(r"^[ \t]*(?:\[!\[[^\]]*\]\((?:https?:)?//[^)\s]+\)\]\([^)\s]+\)[ \t]*)+\n?", re.M)

def offline_images(md: str) -> str:
    "No image from another host: the site loads nothing from the network. A line of badges (the README's CI badge, which"
    "nbdev's own site drops with the title cell) is left out; any other such image becomes its alt text."
    return _REMOTE_IMAGE.sub(lambda m: m[1] or "image", _BADGE_LINE.sub("", md))

def plain_markdown(md: str) -> str:
    "Markdown nbconvert renders: Quarto's `[text](url){target=... style=...}` becomes an HTML link; pipes in tables' code"
    "spans; no image from another host."
    return offline_images(table_pipes(_QUARTO_ATTRS.sub(lambda m: f'<a href="{m[2]}" class="nbdev-source" target="_blank">{m[1]}</a>', md)))

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
            if (md := relative_links(plain_markdown(src), page, doc_url, pages, anchors)).strip(): cells.append(_markdown_cell(md))
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

def job_rank(job: str) -> tuple:
    "Where a job goes in the navigation: the pipeline's run order (validate, stats, train, register), then the jobs that"
    "run on their own schedule (drift), by name."
    from loan_default.pipeline import JOBS
    return (JOBS.index(job), "") if job in JOBS else (len(JOBS), job)

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
    nav_jobs.sort(key=lambda e: job_rank(Path(next(iter(e.values()))).stem))
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

DOCS_PORT = 8001   # the API keeps 8000 (LD_SERVE_PORT): both can run at once

def serve(site: Path = SITE, port: int = DOCS_PORT) -> None:
    "Serve the built site on loopback (what GitHub Pages would serve), until Ctrl-C."
    import functools, http.server
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        print(f"serving {site} on http://127.0.0.1:{port}/")
        httpd.serve_forever()

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", action="store_true", help="serve _site/ on loopback after building")
    ap.add_argument("--port", type=int, default=DOCS_PORT, help=f"port for --serve (default: {DOCS_PORT})")
    ap.add_argument("--site", type=Path, default=SITE, help="where the site goes (default: _site/)")
    ap.add_argument("--work", type=Path, default=WORK, help="where the page sources go (default: _proc/site_src/)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    built = build(a.site, a.work, quiet=a.quiet)
    if a.serve: serve(built, a.port)
