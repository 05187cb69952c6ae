"""Declares the Cython kernel; everything else is in pyproject.toml."""
from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 but no -march=native: the wheel is baked into an AMI that runs on other CPUs.
kernel = Extension("grid._primes", ["grid/_primes.pyx"], extra_compile_args=["-O3"])

setup(ext_modules=cythonize([kernel], language_level=3))
