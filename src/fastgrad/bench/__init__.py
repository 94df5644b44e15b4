"""The `fastgrad-bench` microbenchmark CLI (`python -m fastgrad.bench`).

Runs the workloads W1-W10 and W14 of BENCHMARKS.md beside NumPy by hand and, when
installed, PyTorch, and prints one table of figures, ratios and targets.
Workload bodies: cases.py; sizes and targets: suite.py; timing: harness.py;
output: report.py; the command line: __main__.py.
"""
