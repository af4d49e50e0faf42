"""A tiny, deterministic training script: logistic regression on synthetic data, stdlib only.

Run it tracked:   git exp run --name demo -p lr=0.5 -p epochs=20 -- python examples/train.py
"""

from __future__ import annotations

import math
import random

import gitexp


def make_data(n: int, seed: int) -> list[tuple[list[float], int]]:
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        x = [rng.gauss(0, 1), rng.gauss(0, 1)]
        data.append((x, int(1.5 * x[0] - x[1] + rng.gauss(0, 0.5) > 0)))
    return data


def main() -> None:
    defaults = {"lr": 0.5, "epochs": 20, "seed": 0, "n": 400}
    params = {**defaults, **gitexp.params()}
    with gitexp.start_run(params=params) as run:
        train, test = make_data(params["n"], params["seed"]), make_data(200, params["seed"] + 1)
        w, b = [0.0, 0.0], 0.0
        for epoch in range(params["epochs"]):
            loss = 0.0
            for x, y in train:
                p = 1 / (1 + math.exp(-(w[0] * x[0] + w[1] * x[1] + b)))
                loss -= math.log(p if y else 1 - p)
                grad = p - y
                w = [w[0] - params["lr"] * grad * x[0] / len(train), w[1] - params["lr"] * grad * x[1] / len(train)]
                b -= params["lr"] * grad / len(train)
            acc = sum((w[0] * x[0] + w[1] * x[1] + b > 0) == bool(y) for x, y in test) / len(test)
            run.log_metrics({"loss": loss / len(train), "acc": acc}, step=epoch)
            print(f"epoch {epoch:3d}  loss {loss / len(train):.4f}  acc {acc:.3f}")
        run.set_tag("model", "logistic-regression")


if __name__ == "__main__":
    main()
