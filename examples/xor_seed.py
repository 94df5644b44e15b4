"""The classic: a one-hidden-layer sigmoid network learns XOR, trained with an optimizer.

    python examples/xor_seed.py             # 5000 epochs
    python examples/xor_seed.py 1000        # fewer (or XOR_EPOCHS=1000)

Prints the loss every 500 epochs (every tenth of the run when shorter) and, at the end, the
predictions and the gradients of the first layer's weights.
"""
import os
import sys

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.optim as optim


def main(epochs=5000, seed=0, lr=0.5):
    torch.manual_seed(seed)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])

    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    every = 500 if epochs >= 5000 else max(1, epochs // 10)
    losses = []
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if epoch % every == 0:
            print(f"epoch {epoch:5d}  loss {losses[-1]:.6f}")

    with torch.no_grad():
        print("predictions:", [round(v, 3) for v in model(x).flatten().tolist()])
    print("first layer weight gradients:")
    print(model[0].weight.grad)
    return losses


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("XOR_EPOCHS", 5000))
    main(epochs=n)
