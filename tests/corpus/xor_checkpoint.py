# XOR with nn.Sequential, Tanh and SGD with momentum; a checkpoint dict with the model, the
# optimizer and the epoch is saved, loaded into fresh objects, and training resumes.
import os
import tempfile

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.optim as optim

torch.manual_seed(10)
X = torch.tensor([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
Y = torch.tensor([[0.], [1.], [1.], [0.]])


def make():
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Sigmoid())
    return model, optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


model, opt = make()
loss_fn = nn.BCELoss()
for epoch in range(300):
    opt.zero_grad()
    loss = loss_fn(model(X), Y)
    loss.backward()
    opt.step()
    if epoch % 100 == 0:
        print(f"epoch {epoch} loss {loss.item():.4f}")

path = os.path.join(tempfile.mkdtemp(), "ckpt.pt")
torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 300}, path)
ckpt = torch.load(path)
model2, opt2 = make()
model2.load_state_dict(ckpt["model"])
opt2.load_state_dict(ckpt["optimizer"])
print("resumed at epoch", ckpt["epoch"])
for epoch in range(ckpt["epoch"], ckpt["epoch"] + 200):
    opt2.zero_grad()
    loss = loss_fn(model2(X), Y)
    loss.backward()
    opt2.step()
    if epoch % 100 == 0:
        print(f"epoch {epoch} loss {loss.item():.4f}")
print("predictions", [round(p, 2) for p in model2(X).detach().squeeze(1).tolist()])
