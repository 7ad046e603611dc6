"Hand-written setup.py: reads settings.ini (nbdev 2's template imports pkg_resources, gone from setuptools)."
from configparser import ConfigParser
from pathlib import Path
from setuptools import find_packages, setup

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
c = cfg["DEFAULT"]

def _split(key): return c.get(key, "").split()

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
    package_data={c["lib_name"]: ["jobs/*.ipynb", "templates/*"]},
    install_requires=_split("requirements"),
    extras_require={"dev": _split("dev_requirements"), "spark": _split("spark_requirements")},
    entry_points={"console_scripts": _split("console_scripts"), "nbdev": [f"{c['lib_name']}={c['lib_name']}._modidx:d"]},
    zip_safe=False,
)
