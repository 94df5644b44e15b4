"""An ordinary PyTorch training loop. Only the import lines below mention fastgrad.

    python examples/pytorch_loop.py            # runs on fastgrad
    python examples/pytorch_loop.py --torch    # the same code on PyTorch (or FASTGRAD_EXAMPLE_BACKEND=torch)

It classifies three interleaved spirals with a small MLP: Adam, a step schedule, gradient
clipping, mini-batches, train/eval modes, no_grad evaluation and a state_dict checkpoint.
tests/test_drop_in.py runs it under both libraries from the same initial weights and compares
the loss curves.
"""
import os
import sys

import numpy as np

if "--torch" in sys.argv or os.environ.get("FASTGRAD_EXAMPLE_BACKEND") == "torch":
    import torch
    import torch.nn as nn
    import torch.optim as optim
    import torch.nn.functional as F
else:
    import fastgrad as torch
    import fastgrad.nn as nn
    import fastgrad.optim as optim
    import fastgrad.nn.functional as F


def make_data(n_per_class=200, classes=3, seed=0):
    """Three interleaved spirals in the plane (NumPy, so both libraries see the same numbers)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        ys.append(np.full(n_per_class, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    order = rng.permutation(len(y))
    return torch.from_numpy(x[order]), torch.from_numpy(y[order])


class MLP(nn.Module):
    def __init__(self, hidden=64, classes=3):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.out(x)


def train(model, x, y, epochs=20, batch_size=50, lr=0.01):
    """Mini-batch training; returns the loss of every step."""
    optimizer = optim.Adam(model.parameters(), lr=lr)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    criterion = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _epoch in range(epochs):
        for start in range(0, len(y), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    return losses


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    return (pred == y).float().mean().item()


def main(epochs=20):
    torch.manual_seed(0)
    x, y = make_data()
    model = MLP()
    losses = train(model, x, y, epochs=epochs)
    checkpoint = model.state_dict()
    restored = MLP()
    restored.load_state_dict(checkpoint)
    print(f"backend: {torch.__name__}")
    for i in range(0, len(losses), max(1, len(losses) // 10)):
        print(f"step {i:4d}  loss {losses[i]:.4f}")
    print(f"final loss {losses[-1]:.4f}  train accuracy {accuracy(restored, x, y):.3f}")
    return losses


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--torch"]
    main(epochs=int(args[0]) if args else 20)
