"""Turn a `fastgrad-bench --json` file into the table of bench/RESULTS.md.

    python -m fastgrad.bench --json bench/out/run.json      # bench/out/ is git-ignored
    python bench/results_md.py bench/out/run.json > bench/out/table.md

then paste the table into RESULTS.md (it keeps its hand-written notes). A
fastgrad cell without a figure reads "not yet measured" or the run's
"n/a (...)" reason; peers' figures come from the same run.
"""
import json
import sys


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 \
        else f"{v:.3g}"


def _ratio(r, peer):
    v = (r.get("ratios") or {}).get(peer)
    return f"{_fmt(v)}x" if isinstance(v, (int, float)) else "-"


def _fastgrad_cell(fg):
    if isinstance(fg, (int, float)):
        return _fmt(fg)
    if isinstance(fg, str) and fg.startswith("n/a ("):
        return f"not yet measured ({fg[5:-1]})"
    return "not yet measured"


def render(data):
    h = data["header"]
    out = [f"Measured {h['date']} on commit `{h['commit']}`: {h['machine']}; "
           f"{h['python']}, NumPy {h['numpy']}, torch {h['torch']}, fastgrad {h['fastgrad']}; "
           f"{h['mode']}; threads: {h['threads']}; load: {h.get('load', '?')}; host speed: "
           f"{h.get('host speed', 'not recorded')}.", ""]
    if "WARNING" in h:
        out += [f"**{h['WARNING']}**", ""]
    out += ["| id | case | unit | fastgrad | torch | torch fused | numpy | x torch | x numpy "
            "| target | met |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in data["rows"]:
        f = r["figures"]
        fg = f.get("fastgrad")
        met = {True: "yes", False: "no", None: "-"}[r["met"]]
        out.append(f"| {r['workload']} | {r['case']} | {r['unit']} | "
                   f"{_fastgrad_cell(fg)} | "
                   f"{_fmt(f.get('torch'))} | {_fmt(f.get('torch fused'))} | "
                   f"{_fmt(f.get('numpy'))} | {_ratio(r, 'torch')} | {_ratio(r, 'numpy')} | "
                   f"{r['target']} | {met} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as fh:
        sys.stdout.write(render(json.load(fh)))
