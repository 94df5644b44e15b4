"""Train a LeNet-style CNN on 8x8 handwritten digits (scikit-learn's digits when installed,
otherwise the synthetic digits of fastgrad.demo), each image scaled up 3x (nearest) and padded
to 28x28, with SGD + momentum; prints the training loss as it falls and the test accuracy.

    python examples/lenet_digits.py [steps]
"""
import sys

import numpy as np

import fastgrad as torch
import fastgrad.nn as nn
from fastgrad.demo import load_digits, split


def to_28x28(x):
    """(n, 64) in 0..1 -> (n, 1, 28, 28): each pixel a 3x3 block, 2 pixels of border."""
    img = x.reshape(-1, 8, 8).repeat(3, axis=1).repeat(3, axis=2)
    return np.pad(img, ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float32)


def lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def main(steps=300, batch_size=64, log_every=25):
    torch.manual_seed(0)
    x, y, source = load_digits()
    x_train, y_train, x_test, y_test = split(x, y)
    x_train, x_test = to_28x28(x_train), to_28x28(x_test)
    print(f"{source}: {len(y_train)} training and {len(y_test)} test images, 1x28x28")
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    running = None
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(y_train), batch_size)
        opt.zero_grad()
        loss = loss_fn(model(torch.from_numpy(x_train[idx])), torch.from_numpy(y_train[idx]))
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step == 1 or step % log_every == 0 or step == steps:
            print(f"step {step:4d}  loss {running:.4f}")
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    print(f"test accuracy {np.mean(pred == y_test):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
