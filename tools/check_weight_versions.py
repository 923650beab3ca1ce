"""Checks headstart's table of weight files (src/weight_versions.c, as `headstart backbones
--format json` lists it) against torchvision's weights enums: for every torchvision weights
entry of a headstart backbone, the file must be known with the same crop, resize,
interpolation (mean and std are torchvision's ImageNet ones for all of these), and top-1.

Run: /work/main/.venv/bin/python tools/check_weight_versions.py [build/headstart]
(torchvision 0.14; .venv-bench's torchvision 0.20 checks the later EfficientNet names)
Exits 1 and lists the differences when any; files headstart knows that this torchvision does
not name (later releases' EfficientNet names) are listed as such, not failed.
"""
import json
import subprocess
import sys

import torchvision.models as models

ENUMS = {
    "vgg16": "VGG16", "vgg16_bn": "VGG16_BN", "resnet18": "ResNet18", "resnet34": "ResNet34",
    "resnet50": "ResNet50", "resnet101": "ResNet101", "mobilenet_v2": "MobileNet_V2",
    "mobilenet_v3_small": "MobileNet_V3_Small", "mobilenet_v3_large": "MobileNet_V3_Large",
    "efficientnet_b0": "EfficientNet_B0", "efficientnet_b1": "EfficientNet_B1",
    "efficientnet_b2": "EfficientNet_B2", "efficientnet_b3": "EfficientNet_B3",
    "convnext_tiny": "ConvNeXt_Tiny",
}
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "build/headstart"
    listing = json.loads(subprocess.run([cli, "backbones", "--format", "json"], check=True,
                                        capture_output=True, text=True).stdout)
    known = {b["name"]: {f["file"]: f for f in b["weights"]["known_files"]} for b in listing}
    bad, checked, extra = [], 0, []
    for name, enum in ENUMS.items():
        named = set()
        for w in getattr(models, enum + "_Weights"):
            t = w.transforms()
            if list(t.mean) != IMAGENET[0] or list(t.std) != IMAGENET[1]:
                continue  # VGG16's IMAGENET1K_FEATURES: a features-only file, not a backbone's
            file = w.url.rsplit("/", 1)[1]
            named.add(file)
            row = known.get(name, {}).get(file)
            want = (t.crop_size[0], t.resize_size[0], t.interpolation.value,
                    round(w.meta["_metrics"]["ImageNet-1K"]["acc@1"], 3))
            if row is None:
                bad.append(f"{name} {w.name}: {file} is not known")
                continue
            got = (row["input_size"], row["resize_size"], row["interpolation"],
                   round(row["top1"], 3))
            checked += 1
            if got != want:
                bad.append(f"{name} {w.name} {file}: headstart {got}, torchvision {want}")
        extra += [f"{name}: {f}" for f in known.get(name, {}) if f not in named]
    for line in extra:
        print("not in this torchvision (kept for other releases):", line)
    for line in bad:
        print("DIFFERS:", line)
    print(f"{checked} torchvision weight files checked, {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
