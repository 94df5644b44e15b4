# A bag-of-words classifier: nn.Embedding, a custom collate_fn that pads token lists,
# mean over the non-padding tokens, and a linear head.
import fastgrad as torch
from fastgrad import nn
from fastgrad.utils.data import DataLoader

torch.manual_seed(11)
vocab = 20
PAD = 0
good = [3, 4, 5, 6]
bad = [7, 8, 9, 10]
samples = []
for i in range(120):
    label = i % 2
    words = (good if label else bad) * 2 + [int(w) for w in torch.randint(11, vocab, (i % 5 + 1,))]
    samples.append((words[: 3 + i % 6], label))


def collate(batch):
    longest = max(len(words) for words, _ in batch)
    tokens = torch.tensor([words + [PAD] * (longest - len(words)) for words, _ in batch])
    labels = torch.tensor([label for _, label in batch])
    return tokens, labels


class BagOfWords(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8, padding_idx=PAD)
        self.head = nn.Linear(8, 2)

    def forward(self, tokens):
        mask = (tokens != PAD).float().unsqueeze(-1)
        summed = (self.embed(tokens) * mask).sum(dim=1)
        return self.head(summed / mask.sum(dim=1))


loader = DataLoader(samples, batch_size=16, shuffle=True, collate_fn=collate)
model = BagOfWords()
opt = torch.optim.Adam(model.parameters(), lr=0.05)
for epoch in range(4):
    losses = []
    for tokens, labels in loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(tokens), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"epoch {epoch}: mean loss {sum(losses) / len(losses):.4f}")
