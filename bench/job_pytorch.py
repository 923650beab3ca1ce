"""The classic PyTorch transfer-learning loop (the tutorial recipe), as the baseline for
bench/run_job.sh: ImageFolder + per-image transforms, DataLoader, a frozen pretrained backbone
with a new Linear head, SGD, CrossEntropyLoss, and fit() + validate() every epoch, running the
WHOLE network on every image every time (that is what headstart's cached features avoid).

Done right where the classic code often is not: the frozen backbone stays in eval mode (BatchNorm
statistics, drop-connect and the dropout before _fc in inference mode, as in headstart, whose
trainable head is the last Linear only), validation runs under no_grad, and the epoch loss is the
per-sample mean.

Usage: job_pytorch.py --data DIR [--epochs 10] [--batch-size 32] [--lr 0.001] [--momentum 0.9]
                      [--threads N] [--weights PATH] [--seed 0] [--vgg16]
DIR holds train/<class>/... and test/<class>/... Ends with one machine-readable line:
RESULT wall_s=... test_acc=... best_acc=... (accuracies in %, test_acc of the last epoch)."""
import argparse
import os
import sys
import time

T0 = time.perf_counter()  # wall time includes imports and model load, as a user sees it

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads [torch's default]")
    p.add_argument("--weights", default=os.path.join(ROOT, "weights", "efficientnet-lite0-57934424.pth"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vgg16", action="store_true", help="torchvision vgg16, random weights")
    return p.parse_args()


def build_model(args, num_classes):
    """Returns (model, head, size, mean, std): the whole network with a new head for num_classes."""
    if args.vgg16:
        import torchvision
        model = torchvision.models.vgg16()  # no VGG16 weights offline: random, for timing only
        for p in model.parameters():
            p.requires_grad = False
        model.classifier[6] = nn.Linear(4096, num_classes)
        return model, model.classifier[6], 224, [0.5] * 3, [0.5] * 3
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    for p in model.parameters():
        p.requires_grad = False
    model._fc = nn.Linear(1280, num_classes)
    # headstart's Lite0 input: (pixel - 127) / 128 on 0..255, i.e. ToTensor then these.
    return model, model._fc, 224, [127 / 255] * 3, [128 / 255] * 3


def fit(model, loader, criterion, optimizer):
    model.eval()  # frozen backbone: BatchNorm, drop-connect and dropout stay in inference mode
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * x.size(0)  # per-sample mean over the epoch, not per batch
        correct += (out.argmax(1) == y).sum().item()
        seen += x.size(0)
    return loss_sum / seen, 100.0 * correct / seen


def validate(model, loader, criterion):
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            loss_sum += criterion(out, y).item() * x.size(0)
            correct += (out.argmax(1) == y).sum().item()
            seen += x.size(0)
    return loss_sum / seen, 100.0 * correct / seen


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    train_set = datasets.ImageFolder(os.path.join(args.data, "train"))
    test_set = datasets.ImageFolder(os.path.join(args.data, "test"))
    model, head, size, mean, std = build_model(args, len(train_set.classes))
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                             transforms.Normalize(mean, std)])
    train_set.transform = test_set.transform = tf
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=0)
    test_loader = DataLoader(test_set, batch_size=args.batch_size, shuffle=False, num_workers=0)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(head.parameters(), lr=args.lr, momentum=args.momentum)
    print(f"pytorch {'vgg16' if args.vgg16 else 'efficientnet_lite0'}: {len(train_set)} train, "
          f"{len(test_set)} test, {len(train_set.classes)} classes, "
          f"{torch.get_num_threads()} threads", flush=True)
    best = 0.0
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        train_loss, train_acc = fit(model, train_loader, criterion, optimizer)
        val_loss, val_acc = validate(model, test_loader, criterion)
        best = max(best, val_acc)
        print(f"epoch {epoch}/{args.epochs} train_loss {train_loss:.4f} train_acc {train_acc:.2f} "
              f"val_loss {val_loss:.4f} val_acc {val_acc:.2f} seconds {time.perf_counter() - t:.1f}",
              flush=True)
    print(f"RESULT wall_s={time.perf_counter() - T0:.1f} test_acc={val_acc:.2f} best_acc={best:.2f}")


if __name__ == "__main__":
    sys.exit(main())
