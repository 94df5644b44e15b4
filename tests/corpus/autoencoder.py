# A small autoencoder with a sigmoid output, MSE and Adagrad, on generated 16-pixel patterns.
import fastgrad as torch
import fastgrad.nn as nn
from fastgrad.utils.data import DataLoader, TensorDataset

torch.manual_seed(9)
base = torch.rand(4, 16)
codes = torch.randint(0, 4, (320,))
data = (base[codes] + 0.05 * torch.randn(320, 16)).clamp(0, 1)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        self.decoder = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 16), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


model = AutoEncoder()
optimizer = torch.optim.Adagrad(model.parameters(), lr=0.05)
criterion = nn.MSELoss()
loader = DataLoader(TensorDataset(data), batch_size=40, shuffle=True)
for epoch in range(8):
    epoch_loss = 0.0
    for (batch,) in loader:
        recon = model(batch)
        loss = criterion(recon, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
    print(f"epoch [{epoch + 1}/8], loss: {epoch_loss / len(loader):.5f}")
