"""Tutorial-shaped PyTorch programs (tests/corpus/*.py) run unchanged but for their imports.

Each program is written as a user would write it for PyTorch, with `import fastgrad as torch`
(and `from fastgrad... import ...`) as its only change: seeded initialisation, DataLoaders,
`torch.cuda.is_available()`, `model.to(device)`, `train()`/`eval()`, `torch.save`/`torch.load`.
Its printed output must equal, line for line, what PyTorch 2.13 printed for the same program
(tests/corpus/*.out): the same seed gives the same weights, the same batches and so the same
losses. The text matches exactly; a printed number may differ by one unit in its last printed
digit, because float32 sums and transcendental functions round differently in the last bit
(PyTorch vectorises sin and its reductions differently) and a few hundred steps of training
carry that into the fifth significant digit. Different random streams or a wrong gradient
change the numbers from the first digits on. In reference mode (FASTGRAD_TEST_BACKEND=torch)
the programs run on PyTorch itself, which checks the recorded outputs.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _backend import REFERENCE, child_env

CORPUS = Path(__file__).parent / "corpus"
NUMBER = re.compile(r"-?\d+(?:\.(\d+))?(?:e[-+]?\d+)?")


def _same_line(got, expected):
    """Equal text, and every printed number within one unit of its last printed digit."""
    if NUMBER.sub("#", got) != NUMBER.sub("#", expected):
        return False
    for g, e in zip(NUMBER.finditer(got), NUMBER.finditer(expected)):
        if g[0] == e[0]:
            continue
        unit = 10.0 ** -len(e[1] or "")
        if "e" in e[0]:
            unit *= 10.0 ** int(e[0].split("e")[1])
        if abs(float(g[0]) - float(e[0])) > unit * 1.0001:
            return False
    return True
PROGRAMS = sorted(p.stem for p in CORPUS.glob("*.py"))


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_prints_what_pytorch_printed(name, tmp_path):
    source = (CORPUS / f"{name}.py").read_text()
    if REFERENCE:
        source = source.replace("fastgrad", "torch")
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    env = dict(os.environ if REFERENCE else child_env(), PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = (CORPUS / f"{name}.out").read_text().splitlines()
    got = proc.stdout.splitlines()
    for i, (g, e) in enumerate(zip(got, expected)):
        assert _same_line(g, e), f"{name}.py line {i + 1}: printed {g!r}, PyTorch printed {e!r}"
    assert len(got) == len(expected), f"{name}.py printed {len(got)} lines, PyTorch {len(expected)}"
