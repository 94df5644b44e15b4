# A classifier trained with SGD + momentum under a StepLR schedule, with train()/eval()
# around a dropout layer and the learning rate printed as it decays.
import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.nn.functional as F
from fastgrad.optim.lr_scheduler import StepLR
from fastgrad.utils.data import DataLoader, TensorDataset

torch.manual_seed(6)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.dropout = nn.Dropout(0.25)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.dropout(x)
        return F.log_softmax(self.fc2(x), dim=1)


X = torch.randn(256, 10)
y = (X[:, :2] > 0).long() @ torch.tensor([1, 2])
loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
scheduler = StepLR(optimizer, step_size=2, gamma=0.5)

for epoch in range(1, 6):
    model.train()
    for batch_idx, (data, target) in enumerate(loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 4 == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.dataset)}]\tLoss: {loss.item():.4f}")
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        output = model(X)
        test_loss = F.nll_loss(output, y, reduction='sum').item() / len(X)
        pred = output.argmax(dim=1, keepdim=True)
        correct = pred.eq(y.view_as(pred)).sum().item()
    print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(X)}")
    scheduler.step()
    print("lr", scheduler.get_last_lr())
