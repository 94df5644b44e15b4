"""A small transformer classifies token sequences as sorted or not: token and position
embeddings, a 2-layer nn.TransformerEncoder (batch_first, pre-norm), mean pooling and a linear
head, trained with AdamW on generated data. Half the unsorted sequences are sorted ones with two
neighbouring tokens swapped, so the model has to compare neighbours, not spot disorder at a
glance. Prints the training loss falling and the held-out accuracy.

    python examples/transformer_classifier.py [steps]
"""
import sys

import numpy as np

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.optim as optim

VOCAB, LENGTH = 10, 8


def make_data(n, rng):
    """n sequences of LENGTH tokens in [0, VOCAB), label 1 when non-decreasing."""
    x = rng.integers(0, VOCAB, size=(n, LENGTH))
    kind = rng.integers(0, 4, size=n)        # 0, 1: sorted; 2: one swap; 3: random
    x[kind <= 2] = np.sort(x[kind <= 2], axis=1)
    swap = np.flatnonzero(kind == 2)
    pos = rng.integers(0, LENGTH - 1, size=len(swap))
    x[swap, pos], x[swap, pos + 1] = x[swap, pos + 1], x[swap, pos].copy()
    y = np.all(np.diff(x, axis=1) >= 0, axis=1).astype(np.int64)
    return x.astype(np.int64), y


class SortedClassifier(nn.Module):
    def __init__(self, d_model=32, nhead=4, layers=2):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, d_model)
        self.positions = nn.Parameter(torch.randn(LENGTH, d_model) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2 * d_model,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(d_model, 2)

    def forward(self, x):
        h = self.encoder(self.tokens(x) + self.positions)
        return self.head(h.mean(1))


def main(steps=300, seed=0, batch=64):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    xte, yte = make_data(1000, rng)
    model = SortedClassifier()
    optimizer = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    losses, running = [], 0.0
    every = max(1, steps // 10)
    for step in range(1, steps + 1):
        xb, yb = make_data(batch, rng)
        optimizer.zero_grad()
        loss = criterion(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        loss.backward()
        optimizer.step()
        running += loss.item()
        if step % every == 0:
            losses.append(running / every)
            print(f"step {step:4d}  train loss {losses[-1]:.4f}")
            running = 0.0
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(xte)).argmax(dim=1).numpy()
    acc = float((pred == yte).mean())
    print(f"held-out accuracy {acc * 100:.1f}% (sorted share {yte.mean() * 100:.0f}%)")
    return losses, acc


if __name__ == "__main__":
    main(steps=int(sys.argv[1]) if len(sys.argv) > 1 else 300)
