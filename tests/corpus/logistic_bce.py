# Logistic regression with BCEWithLogitsLoss, Adam, drop_last batches and a sigmoid readout.
import fastgrad as torch
from fastgrad.utils.data import DataLoader, TensorDataset

torch.manual_seed(5)
n = 400
X = torch.randn(n, 5)
true_w = torch.tensor([1.5, -2.0, 0.5, 0.0, 1.0])
y = ((X @ true_w + 0.3 * torch.randn(n)) > 0).float()

loader = DataLoader(TensorDataset(X, y), batch_size=48, shuffle=True, drop_last=True)
print("batches per epoch:", len(loader))

model = torch.nn.Linear(5, 1)
criterion = torch.nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.1)

for epoch in range(6):
    running = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        logits = model(xb).squeeze(1)
        loss = criterion(logits, yb)
        loss.backward()
        optimizer.step()
        running += loss.item()
    print(f"epoch {epoch} loss {running / len(loader):.4f}")

with torch.no_grad():
    probs = torch.sigmoid(model(X).squeeze(1))
    acc = ((probs > 0.5).float() == y).float().mean()
print(f"accuracy {acc.item():.3f}")
print("weights", [round(v, 2) for v in model.weight.detach().squeeze(0).tolist()])
