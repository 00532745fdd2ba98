"""The optional C accelerator for creation tracking: looseends works without it, only slower to track.

Optimised whatever CFLAGS say: a build whose CFLAGS only add include paths (CI's headers for 3.14+) would
otherwise compile without optimisation."""

import sys

from setuptools import Extension, setup

speedups = Extension(
    "looseends.sources._speedups",
    ["src/looseends/sources/_speedups.c"],
    optional=True,  # no compiler or no headers: installed without it
    extra_compile_args=[] if sys.platform == "win32" else ["-O2"],
)
setup(ext_modules=[speedups])
