"""fastgrad's demo: train a small MLP on handwritten digits and report accuracy and speed.

    fastgrad-demo                  # or: python -m fastgrad.demo
    fastgrad-demo --steps 300 --hidden 64 --lr 0.005 --seed 1

The data is scikit-learn's bundled 8x8 digits (1797 images, shipped inside the package: no
download) when scikit-learn is installed, and otherwise a digits-like set drawn here: each class
is a 5x7 bitmap glyph of the digit, placed at a random offset in an 8x8 frame, with random
stroke intensities, 10% of the ink dropped and Gaussian noise, on sklearn's 0..16 scale. The
model is the 64-128-10 ReLU MLP of benchmark W5, trained with Adam on batches of 64 and
cross-entropy.
"""
import argparse
import sys
import time

import numpy as np

# 5x7 glyphs of 0-9, one string per row ('#' = ink)
_GLYPHS = [
    [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
    ["#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "],
    ["  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "],
    ["#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "],
    [" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "],
    [" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "],
]


def synthetic_digits(n_per_class=180, seed=0):
    """(images (n, 64) float32 in 0..16, labels (n,) int64): glyphs at random offsets + noise."""
    rng = np.random.default_rng(seed)
    glyphs = [np.array([[c == "#" for c in row] for row in g], dtype=np.float64) for g in _GLYPHS]
    xs, ys = [], []
    for label, glyph in enumerate(glyphs):
        for _ in range(n_per_class):
            img = np.zeros((8, 8))
            dy, dx = rng.integers(0, 2), rng.integers(0, 4)
            ink = glyph * rng.uniform(6, 16, glyph.shape) * (rng.random(glyph.shape) > 0.1)
            img[dy:dy + 7, dx:dx + 5] = ink
            img += rng.normal(0, 2.5, img.shape)
            xs.append(np.clip(img, 0, 16).ravel())
            ys.append(label)
    return np.array(xs, dtype=np.float32), np.array(ys, dtype=np.int64)


def load_digits(seed=0):
    """(x, y, source): scikit-learn's digits if importable, else synthetic_digits()."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        x, y = synthetic_digits(seed=seed)
        return x, y, "synthetic 8x8 digits (scikit-learn not installed)"
    d = sk_load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64), "scikit-learn digits"


def split(x, y, test_fraction=0.2, seed=0):
    """Shuffle and split into (x_train, y_train, x_test, y_test), with features scaled to 0..1."""
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    n_test = int(len(y) * test_fraction)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


def _bar(done, total, loss, width=30):
    filled = int(width * done / total)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done:5d}/{total}  loss {loss:.4f}"


def train(steps=1500, hidden=128, lr=1e-3, batch_size=64, seed=0, out=sys.stdout, progress=True):
    """Train the MLP; returns a dict with the test accuracy, final loss and µs per step."""
    import fastgrad as torch
    import fastgrad.nn as nn
    import fastgrad.optim as optim

    x, y, source = load_digits(seed)
    xtr, ytr, xte, yte = split(x, y, seed=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    print(f"fastgrad demo: {source}, {len(ytr)} train / {len(yte)} test images", file=out)
    print(f"model: 64-{hidden}-10 ReLU MLP, Adam lr={lr}, batch {batch_size}, {steps} steps",
          file=out)

    rng = np.random.default_rng(seed)
    batches = []                 # mini-batches as tensors, made before timing starts
    while len(batches) < steps:
        order = rng.permutation(len(ytr))
        for s in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[s:s + batch_size]
            batches.append((torch.from_numpy(np.ascontiguousarray(xtr[idx])),
                            torch.from_numpy(np.ascontiguousarray(ytr[idx]))))
    batches = batches[:steps]

    every = max(1, steps // 100)
    loss_value = float("nan")
    train_time = 0.0
    for i, (xb, yb) in enumerate(batches, 1):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        train_time += time.perf_counter() - t0
        if progress and (i % every == 0 or i == steps):
            loss_value = loss.item()
            out.write(_bar(i, steps, loss_value))
            out.flush()
    loss_value = loss.item()
    if progress:
        out.write("\n")

    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(np.ascontiguousarray(xte))).argmax(dim=1).numpy()
    acc = float((pred == yte).mean())
    us = train_time / steps * 1e6
    print(f"test accuracy: {acc * 100:.1f}%  ({int((pred == yte).sum())}/{len(yte)})", file=out)
    print(f"time per training step: {us:.1f} µs  (forward + backward + Adam, batch {batch_size})",
          file=out)
    return {"accuracy": acc, "loss": loss_value, "us_per_step": us, "source": source}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastgrad-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    train(steps=args.steps, hidden=args.hidden, lr=args.lr, batch_size=args.batch_size,
          seed=args.seed, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
