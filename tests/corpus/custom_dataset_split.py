# A Dataset subclass that returns (tensor, int), split with random_split and a seeded
# Generator, batched by the default collate (the ints become an int64 tensor).
import fastgrad as torch
from fastgrad import nn
from fastgrad.utils.data import DataLoader, Dataset, random_split


class Blobs(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(7)
        self.centers = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [0.0, -2.0]])
        self.labels = torch.randint(0, 3, (n,), generator=g)
        self.points = self.centers[self.labels] + torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.points[idx], int(self.labels[idx])


torch.manual_seed(4)
data = Blobs(300)
train_set, val_set = random_split(data, [0.8, 0.2], generator=torch.Generator().manual_seed(42))
print("sizes:", len(train_set), len(val_set))
train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
val_loader = DataLoader(val_set, batch_size=100)

xb, yb = next(iter(train_loader))
print("batch:", tuple(xb.shape), yb.dtype)

model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 3))
opt = torch.optim.Adam(model.parameters(), lr=0.05)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(5):
    model.train()
    total = 0.0
    for xb, yb in train_loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * len(yb)
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb).argmax(dim=1) == yb).sum().item() for xb, yb in val_loader)
    print(f"epoch {epoch}: train loss {total / len(train_set):.4f}, val acc {correct / len(val_set):.3f}")
