"Hand-written setup.py: reads settings.ini (nbdev 2's template imports pkg_resources, gone from setuptools)."
from configparser import ConfigParser
from pathlib import Path
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
c = cfg["DEFAULT"]

def _split(key): return c.get(key, "").split()

class build_py_with_jobs(build_py):
    """Also copy the job notebooks, kept once in nbs/jobs/, into the built package as loan_default/jobs/.
    An editable install (make install) needs no copy: pipeline.jobs_dir reads nbs/jobs/ of the checkout."""
    def run(self):
        super().run()
        src = Path(__file__).resolve().parent / "nbs" / "jobs"
        if not src.is_dir(): return          # a build of the package alone (the service's image) has no jobs to run
        dst = Path(self.build_lib) / c["lib_name"] / "jobs"
        self.mkpath(str(dst))
        for nb in sorted(src.glob("*.ipynb")): self.copy_file(str(nb), str(dst / nb.name))

setup(
    name=c["lib_name"],
    version=c["version"],
    description=c["description"],
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=c["author"],
    author_email=c["author_email"],
    license="Apache-2.0",
    url=c["git_url"],
    keywords=c["keywords"],
    python_requires=f">={c['min_python']}",
    packages=find_packages(include=[c["lib_name"], f"{c['lib_name']}.*"]),
    include_package_data=True,
    package_data={c["lib_name"]: ["templates/*", "static/*", "static/*/*"]},   # static: the API docs' assets (serve.STATIC_DIR)
    cmdclass={"build_py": build_py_with_jobs},
    install_requires=_split("requirements"),
    extras_require={"dev": _split("dev_requirements"), "spark": _split("spark_requirements")},
    entry_points={"console_scripts": _split("console_scripts"), "nbdev": [f"{c['lib_name']}={c['lib_name']}._modidx:d"]},
    zip_safe=False,
)
