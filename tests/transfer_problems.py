"""Problems unlike digits, for the registry-wide transfer test: other sizes, class counts, architectures and data types.

Each is a user's own model trained here with its own recipe (not the digits benchmark's), deterministic per seed.
Built once per test session (a few seconds in all)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


@dataclass
class Made:
    "A trained model with its splits: train (= forget + retain candidates) and test, as tensors or a Dataset."
    name: str
    model: nn.Module
    train: tuple  # (X, y) tensors
    test: tuple
    as_dataset: bool = False  # pass the splits to `unlearn` as torch Datasets

    def split(self, scenario: str, seed: int = 0, forget_class: int = 0, fraction: float = 0.1):
        "(forget, retain) index tensors of the train split for `class` or `random` forgetting."
        y = self.train[1]
        if scenario == "class":
            return torch.nonzero(y == forget_class).flatten(), torch.nonzero(y != forget_class).flatten()
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        k = max(1, round(fraction * len(y)))
        return perm[:k].sort().values, perm[k:].sort().values

    def data(self, idx):
        d = tuple(t[idx] for t in self.train)
        return PairDataset(*d) if self.as_dataset else d

    def test_data(self):
        return PairDataset(*self.test) if self.as_dataset else self.test


class PairDataset(Dataset):
    "A map-style Dataset of (x, y) pairs, the way users' data often arrives."
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return self.x[i], self.y[i]


def _fit(model, X, y, *, epochs, lr, batch_size, optimizer="adam", seed=0, weight_decay=0.0):
    "The user's own training loop: plain mini-batch training."
    g = torch.Generator().manual_seed(seed)
    opt = (torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(batch_size):
            opt.zero_grad(); F.cross_entropy(model(X[idx]), y[idx]).backward(); opt.step()
    return model.eval()


def _accuracy(model, X, y):
    with torch.no_grad(): return (model(X).argmax(-1) == y).float().mean().item()


def wine_mlp(seed: int = 0) -> Made:
    "scikit-learn's wine data (178 rows, 13 features, 3 classes), standardised; an MLP trained with Adam."
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    X, y = load_wine(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-8
    t = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    _fit(model, t(Xtr), torch.tensor(ytr), epochs=60, lr=3e-3, batch_size=16, seed=seed)
    return Made("wine_mlp", model, (t(Xtr), torch.tensor(ytr)), (t(Xte), torch.tensor(yte)))


def _patterns(n: int, seed: int, size: int = 12, classes: int = 4) -> tuple:
    "Images of `classes` noisy stroke patterns (horizontal, vertical, diagonal, ring), randomly shifted: (n, 1, s, s)."
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    y = torch.arange(n) % classes
    shift = torch.randint(-2, 3, (n, 2), generator=g).float()
    cy, cx = yy[None] - size / 2 - shift[:, 0, None, None], xx[None] - size / 2 - shift[:, 1, None, None]
    shapes = [(cy.abs() < 1.2), (cx.abs() < 1.2), ((cy - cx).abs() < 1.2), ((cy ** 2 + cx ** 2).sqrt() - 3.5).abs() < 1.0]
    img = torch.stack([s.float() for s in shapes], 1)[torch.arange(n), y]            # (n, s, s)
    img = img + 0.6 * torch.randn(img.shape, generator=g)
    return img[:, None], y


def cnn_bn(seed: int = 0) -> Made:
    "A small CNN with batch norm on 12x12 stroke images (4 classes), trained with SGD; data passed as a Dataset."
    Xtr, ytr = _patterns(1200, seed)
    Xte, yte = _patterns(400, seed + 1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(64, 4))
    _fit(model, Xtr, ytr, epochs=8, lr=0.05, batch_size=32, optimizer="sgd", seed=seed, weight_decay=5e-4)
    return Made("cnn_bn", model, (Xtr, ytr), (Xte, yte), as_dataset=True)


def deep_mlp(seed: int = 0) -> Made:
    "A 6-layer MLP on 8,000 generated examples of 5 classes (thousands of forget examples per class), Adam."
    from sklearn.datasets import make_classification
    X, y = make_classification(10000, 20, n_informative=12, n_redundant=4, n_classes=5, n_clusters_per_class=2,
                               class_sep=1.5, random_state=seed)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(seed)
    layers, w = [], 20
    for h in (128, 128, 64, 64, 32):
        layers += [nn.Linear(w, h), nn.ReLU()]; w = h
    model = nn.Sequential(*layers, nn.Linear(w, 5))
    _fit(model, X[:8000], y[:8000], epochs=15, lr=1e-3, batch_size=128, seed=seed)
    return Made("deep_mlp", model, (X[:8000], y[:8000]), (X[8000:], y[8000:]))


def many_classes(seed: int = 0) -> Made:
    "20 Gaussian classes in 16 dimensions (3,000 examples), an MLP with dropout trained with AdamW."
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(20, 16, generator=g)
    y = torch.arange(3000) % 20
    X = centres[y] + 2.5 * torch.randn(3000, 16, generator=g)
    perm = torch.randperm(3000, generator=g)
    X, y = X[perm], y[perm]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 20))
    _fit(model, X[:2400], y[:2400], epochs=30, lr=2e-3, batch_size=64, seed=seed, weight_decay=1e-2)
    return Made("many_classes", model, (X[:2400], y[:2400]), (X[2400:], y[2400:]))


PROBLEMS = dict(wine_mlp=wine_mlp, cnn_bn=cnn_bn, deep_mlp=deep_mlp, many_classes=many_classes)


if __name__ == "__main__":
    import time
    torch.set_num_threads(1)
    for name, make in PROBLEMS.items():
        t0 = time.perf_counter(); m = make()
        print(f"{name}: train acc {_accuracy(m.model, *m.train):.3f}, test acc {_accuracy(m.model, *m.test):.3f}, "
              f"n_train {len(m.train[1])}, {time.perf_counter() - t0:.1f} s")
