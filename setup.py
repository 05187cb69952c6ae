"""Declares the Cython kernel; everything else is in pyproject.toml."""
from pathlib import Path

from Cython import Tempita
from Cython.Build import cythonize
from setuptools import Extension, setup


def render(template: str) -> str:
    """Render a Tempita template (x.pyx.tp) into x.pyx, rewritten only when its text changes so that cythonize
    compiles again only then; returns the .pyx path."""
    source = Path(template)
    text = Tempita.Template(source.read_text(), name=template).substitute()
    target = source.with_suffix("")
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return str(target)


# The kernel's 64- and 128-bit functions are written once in the template and rendered for each width.
# -O3 but no -march=native: the wheel is baked into an AMI that runs on other CPUs.
kernel = Extension("grid._primes", [render("grid/_primes.pyx.tp")], extra_compile_args=["-O3"])

setup(ext_modules=cythonize([kernel], language_level=3))
