"""Build the compiled core: one Extension per src/fastgrad/_core/*.pyx.

The build uses every core (Cython translation and C compilation both run in parallel) and, by
default, produces stripped objects without debug information: a wheel of about 2 MB instead of
14 MB, and a shorter link.

FASTGRAD_CYTHON_DEBUG=1 turns bounds/wraparound/initialized checks back on for every module and
builds unoptimised with debug information (CI runs the suite once against such a build).
FASTGRAD_NATIVE=1 adds -march=native (a build for this machine only; the default build runs on any
x86-64 and picks AVX2/FMA loops at run time, Note [Vectorised transcendental kernels]).
"""
import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTGRAD_CYTHON_DEBUG") == "1"
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
CORE = Path("src/fastgrad/_core")

directives = {"language_level": 3, "embedsignature": True}
if DEBUG:
    directives.update(boundscheck=True, wraparound=True, initializedcheck=True)

# -g0 overrides the -g that Python's own CFLAGS carry; -s strips the linked module.
compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
link_args = [] if DEBUG else ["-s"]
if os.environ.get("FASTGRAD_NATIVE") == "1":
    compile_args.append("-march=native")
# optim_kernels: sqrt without errno, so its update loops vectorize (Note [Vectorized update loops]),
# and OpenMP blocks for large parameters (Note [Parallel updates]); kernels: OpenMP loops, and
# selects in vmath.h that only if-convert (vectorise) when comparisons are not treated as
# trapping; blas: products split across the OpenMP team (Note [Products on fastgrad's threads]);
# random: no implicit multiply-add fusion, so its floats round as PyTorch's (Note [PyTorch's streams]),
# and selects that if-convert so the Box-Muller blocks vectorise; ops_rnn: vmath.h's loops too;
# ops_conv/conv_kernels/ops_pool: one sample or plane per thread (Note [Convolution as
# per-sample products]), and ops_pool's max selects if-convert (Note [Pooling windows]);
# ops_norm: row sums reassociated, so the layer-norm reductions vectorise.
PER_MODULE_ARGS = {"optim_kernels": ["-fno-math-errno", "-fopenmp"],
                   "kernels": ["-fopenmp", "-fno-trapping-math"], "blas": ["-fopenmp"],
                   "random": ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"],
                   "ops_rnn": ["-fno-trapping-math"],
                   "ops_conv": ["-fopenmp"], "conv_kernels": ["-fopenmp"],
                   "ops_pool": ["-fopenmp", "-fno-trapping-math"],
                   "ops_norm": ["-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
                                "-fno-signed-zeros"]}
PER_MODULE_LINK = {"kernels": ["-fopenmp"], "blas": ["-fopenmp"], "optim_kernels": ["-fopenmp"],
                   "ops_conv": ["-fopenmp"], "conv_kernels": ["-fopenmp"], "ops_pool": ["-fopenmp"]}
extensions = [
    Extension(
        f"fastgrad._core.{pyx.stem}",
        [str(pyx)],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args + PER_MODULE_ARGS.get(pyx.stem, []),
        extra_link_args=link_args + PER_MODULE_LINK.get(pyx.stem, []),
    )
    for pyx in sorted(CORE.glob("*.pyx"))
]


class ParallelBuildExt(build_ext):
    """Compile the extensions on every core unless the user asked for a count (-j N)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = JOBS


setup(ext_modules=cythonize(extensions, compiler_directives=directives, nthreads=JOBS,
                            force=DEBUG, quiet=True),
      cmdclass={"build_ext": ParallelBuildExt})
