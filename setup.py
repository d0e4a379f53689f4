"""Packaging (the metadata is in pyproject.toml).

A wheel also carries the dbt project's own files, under
``mdc_clustering/dbt_project/``, so that ``mdc_clustering.cluster`` works
after a plain ``pip install`` (it runs ``dbt build`` on that project); an
editable install (``pip install -e .``) reads them from the checkout instead.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What `dbt build` of this project reads (dbt_project.yml's paths, the profile, the selectors); not the
# pictures of docs/.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "selectors.yml", "models", "python_models", "macros",
                 "tests/dbt", "docs")


class BuildPyWithProject(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        into = Path(self.build_lib) / "mdc_clustering" / "dbt_project"
        for name in PROJECT_FILES:
            source, target = ROOT / name, into / name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildPyWithProject})
