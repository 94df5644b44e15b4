"""Build the compiled core: one Extension per src/fastgrad/_core/*.pyx.

FASTGRAD_CYTHON_DEBUG=1 turns bounds/wraparound/initialized checks back on for every module.
"""
import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTGRAD_CYTHON_DEBUG") == "1"
CORE = Path("src/fastgrad/_core")

directives = {"language_level": 3, "embedsignature": True}
if DEBUG:
    directives.update(boundscheck=True, wraparound=True, initializedcheck=True)

compile_args = ["-O3"] if not DEBUG else ["-O0", "-g"]
# optim_kernels: sqrt without errno, so its update loops vectorize (Note [Vectorized update loops])
PER_MODULE_ARGS = {"optim_kernels": ["-fno-math-errno"]}
extensions = [
    Extension(
        f"fastgrad._core.{pyx.stem}",
        [str(pyx)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + PER_MODULE_ARGS.get(pyx.stem, []),
    )
    for pyx in sorted(CORE.glob("*.pyx"))
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives,
                            force=DEBUG, quiet=True))
