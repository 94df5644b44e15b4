# AdamW with weight decay, gradient-norm clipping and a cosine schedule on a regression MLP.
import fastgrad as torch
from fastgrad import nn

torch.manual_seed(8)
X = torch.rand(200, 3) * 4 - 2
y = (X[:, 0] * X[:, 1] - X[:, 2] ** 2).unsqueeze(1)

model = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300)
loss_fn = nn.MSELoss()
for step in range(300):
    opt.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    sched.step()
    if step % 50 == 0:
        print(f"step {step:3d} loss {loss.item():.4f} grad-norm {norm.item():.4f}")
print(f"final loss {loss_fn(model(X), y).item():.4f}")
