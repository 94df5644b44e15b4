"""Classify 8x8 handwritten digits with a 64-128-10 MLP (scikit-learn's digits when installed,
otherwise the synthetic digits of fastgrad.demo), with a validation split, an lr schedule and a
checkpoint saved with fastgrad.save and loaded back.

    python examples/digits_classifier.py [epochs]
"""
import os
import sys
import tempfile

import numpy as np

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.optim as optim
from fastgrad.demo import load_digits, split


def batches(x, y, batch_size, rng):
    order = rng.permutation(len(y))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
        acc = (logits.argmax(dim=1) == torch.from_numpy(y)).float().mean().item()
    model.train()
    return loss, acc


def main(epochs=15, seed=0):
    x, y, source = load_digits(seed)
    xtr, ytr, xte, yte = split(x, y, seed=seed)
    print(f"data: {source}; {len(ytr)} train, {len(yte)} test")
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    rng = np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        total, n = 0.0, 0
        for xb, yb in batches(xtr, ytr, 64, rng):
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            n += len(yb)
        scheduler.step()
        val_loss, val_acc = evaluate(model, xte, yte)
        print(f"epoch {epoch:3d}  lr {scheduler.get_last_lr()[0]:.5f}  train loss {total / n:.4f}"
              f"  test loss {val_loss:.4f}  test acc {val_acc * 100:.1f}%")

    path = os.path.join(tempfile.mkdtemp(), "digits.fg")
    torch.save(model.state_dict(), path)
    clone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    clone.load_state_dict(torch.load(path))
    print(f"checkpoint reloaded from {path}: test acc {evaluate(clone, xte, yte)[1] * 100:.1f}%")
    return val_acc


if __name__ == "__main__":
    main(epochs=int(sys.argv[1]) if len(sys.argv) > 1 else 15)
