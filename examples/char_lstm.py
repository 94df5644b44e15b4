"""A character-level LSTM language model on examples/data/lighthouse.txt (a short story that
ships with the repository): Embedding -> 2-layer LSTM -> Linear over the characters, trained
with Adam on random windows, printing the loss as it falls, then sampling a line of text.

    python examples/char_lstm.py [steps]
"""
import os
import sys

import numpy as np

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.nn.functional as F

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lighthouse.txt")


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed=32, hidden=128, layers=2, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True,
                            dropout=dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx, state=None):
        out, state = self.lstm(self.embed(idx), state)
        return self.head(out), state


def windows(data, seq, batch, rng):
    starts = rng.integers(0, len(data) - seq - 1, size=batch)
    x = np.stack([data[s:s + seq] for s in starts])
    y = np.stack([data[s + 1:s + seq + 1] for s in starts])
    return torch.from_numpy(x), torch.from_numpy(y)


def sample(model, stoi, itos, prompt="The ", n=80):
    model.eval()
    with torch.no_grad():
        idx = torch.tensor([[stoi[c] for c in prompt]])
        logits, state = model(idx)
        out = list(prompt)
        for _ in range(n):
            nxt = int(logits[0, -1].argmax())
            out.append(itos[nxt])
            logits, state = model(torch.tensor([[nxt]]), state)
    model.train()
    return "".join(out)


def main(steps=300, seq=48, batch=32, seed=0, log_every=None):
    text = open(TEXT, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    print(f"text: {len(text)} characters, {len(chars)} distinct")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = CharLSTM(len(chars))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    log_every = log_every or max(1, steps // 10)
    losses, running = [], 0.0
    for step in range(1, steps + 1):
        x, y = windows(data, seq, batch, rng)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running += loss.item()
        if step % log_every == 0:
            losses.append(running / log_every)
            print(f"step {step:4d}  loss {losses[-1]:.3f}")
            running = 0.0
    print("sample:", repr(sample(model, stoi, chars)))
    return losses


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
