"""Smoke test of the fastgrad-bench CLI: it runs and writes well-formed JSON.

Asserts the shape of the output, never a timing (a benchmark is never a test).
"""
import json
import subprocess
import sys

import pytest

from _backend import REFERENCE, fg

pytest.importorskip("fastgrad", reason="fastgrad does not import")


def test_bench_w1_quick_json(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fastgrad.bench", "W1", "--quick", "--repeat", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert {"machine", "python", "numpy", "fastgrad", "torch"} <= set(data["header"])
    rows = [r for r in data["rows"] if r["workload"] == "W1"]
    assert [r["case"] for r in rows] == ["fwd n=1", "fwd+bwd n=1", "fwd n=16", "fwd+bwd n=16"]
    for r in rows:
        assert r["unit"] == "µs/op"
        numpy_figure = r["figures"]["numpy"]
        assert isinstance(numpy_figure, float) and numpy_figure > 0
        fg = r["figures"]["fastgrad"]
        # a figure, or the table's explanation of which API is still missing
        assert (isinstance(fg, float) and fg > 0) or fg.startswith("n/a (")
        if "torch" in r["figures"]:
            assert isinstance(r["figures"]["torch"], float) and r["figures"]["torch"] > 0
    assert "W1" in proc.stdout and "fastgrad" in proc.stdout


@pytest.mark.skipif(REFERENCE, reason="the bench's own workload bodies")
@pytest.mark.parametrize("name", ["make_w4", "make_w11", "make_w12", "make_w13"])
def test_training_step_workloads_run(name):
    """Each training-step body builds a step function that runs (a body that returned None once
    left W11 without a figure)."""
    from fastgrad.bench import cases
    step = getattr(cases, name)(fg)
    assert callable(step)
    step()
    step()


def test_torch_is_timed_outside_the_bench_process():
    """Note [Each library in its own process]: the bench never imports torch itself; torch's
    figures come from a process of its own."""
    code = ("import sys\n"
            "from fastgrad.bench.__main__ import main\n"
            "main(['W4', '--quick', '--repeat', '1'])\n"
            "print('TORCH LOADED' if 'torch' in sys.modules else 'TORCH NOT LOADED')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH NOT LOADED" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| W4 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) > 0                      # fastgrad's figure
    if _torch_installed():
        assert float(cells[5]) > 0                  # torch's, from its own process


def _torch_installed():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not _torch_installed(), reason="needs torch for the peer process")
def test_peer_process_builds_samples_and_survives_a_crash():
    import os

    from fastgrad.bench import harness, suite
    peer = harness.Peer("torch", dict(os.environ))
    try:
        assert peer.info["version"].startswith("2.")
        timer = peer.timer(suite.case("make_w4"))
        assert timer.prepare(0.001) is None
        seconds = timer.sample()
        assert isinstance(seconds, float) and 0 < seconds < 1
        timer.close()
        missing = peer.timer(suite.case("make_nothing"))
        assert missing.prepare(0.001).startswith("n/a (missing:")
        peer.proc.kill()                           # a crash is reported, then a fresh process
        assert peer.ask(op="drop", key=0)["error"] == "n/a (crashed: signal 9)"
        again = peer.timer(suite.case("make_w4"))
        assert again.prepare(0.001) is None and again.sample() > 0
    finally:
        peer.close()
