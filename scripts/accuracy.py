"""Test accuracy of the notebook's two MNIST models, the way the notebook trains them
(one sample a step, one epoch) and with gpunet's defaults (batch 128, 5 epochs).

    PYTHONPATH=. python scripts/accuracy.py [--backend numpy]

Data: Fashion-MNIST (60k/10k, Debian's dataset-fashion-mnist or --data-dir) and
the real MNIST test digits in ../shared/data/mnist (8,000 to train, 2,000 to test);
the MNIST training images are not available offline here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import gpunet
from gpunet.data import load_raw, read_idx
from gpunet.data.preprocess import prepare

DIGITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
SETTINGS = {"notebook": (1, 1), "default": (128, 5)}  # (batch size, epochs)


def datasets(backend: gpunet.Backend) -> dict[str, gpunet.data.preprocess.Prepared]:
    found = {}
    fashion = load_raw("fashion-mnist", download=False, progress=False)
    found["fashion-mnist 60k/10k"] = prepare(fashion.train_images, fashion.train_labels,
                                             fashion.test_images, fashion.test_labels, backend)
    if DIGITS.is_dir():
        images = read_idx(DIGITS / "t10k-images-idx3-ubyte.gz", "images")
        labels = read_idx(DIGITS / "t10k-labels-idx1-ubyte.gz", "labels")
        found["MNIST digits 8k/2k"] = prepare(images[:8000], labels[:8000], images[8000:],
                                              labels[8000:], backend)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    args = parser.parse_args()
    backend = gpunet.get_backend(args.backend)
    print("| data | model | setting | batch | epochs | lr, momentum | test accuracy | samples/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, data in datasets(backend).items():
        for model_name in ("logistic", "deep"):
            for setting, (batch_size, epochs) in SETTINGS.items():
                rates = gpunet.models.default_rates(model_name, batch_size)
                gpunet.seed(0)
                model = gpunet.mnist_model(model_name, backend=backend)
                history = gpunet.fit(model, gpunet.SoftmaxCrossEntropy(), gpunet.Momentum(*rates),
                                     data.train_x, data.train_y, epochs=epochs,
                                     batch_size=batch_size, test=(data.test_x, data.test_y),
                                     progress=False)
                speed = sum(s.samples_per_second for s in history) / len(history)
                print(f"| {name} | {model_name} | {setting} | {batch_size} | {epochs} | "
                      f"{rates[0]}, {rates[1]} | {history[-1].test_accuracy:.4f} | {speed:,.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
