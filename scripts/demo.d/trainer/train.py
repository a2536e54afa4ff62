#!/usr/bin/env python3
"""Cordon demo trainer: a churn model on the projected customer columns.

Runs inside the Cordon sandbox: reads /data/customers (only the columns the
spec projected), trains a logistic regression with scikit-learn by gradient
epochs, reports progress on the metrics channel ($CORDON_METRICS, JSON lines)
and writes the model and its evaluation to /out. It prints no data.
"""
import csv
import json
import os
import sys

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

EXPECTED = ["age", "tenure", "spend", "churned"]


def metric(**values):
    path = os.environ.get("CORDON_METRICS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(values) + "\n")


def main():
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 5
    with open("/data/customers", newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        if header != EXPECTED:
            # The projection is the privacy boundary: refuse to train on anything else.
            print(f"unexpected columns {header}; expected {EXPECTED}", file=sys.stderr)
            return 3
        data = np.array([[float(v) for v in r] for r in rows])
    x, y = data[:, :3], data[:, 3].astype(int)
    split = int(len(x) * 0.8)
    scaler = StandardScaler().fit(x[:split])
    xtr, xte = scaler.transform(x[:split]), scaler.transform(x[split:])
    model = SGDClassifier(loss="log_loss", random_state=0, learning_rate="optimal")
    for epoch in range(1, epochs + 1):
        model.partial_fit(xtr, y[:split], classes=[0, 1])
        p = model.predict_proba(xte)[:, 1]
        loss = float(-np.mean(y[split:] * np.log(p + 1e-12) + (1 - y[split:]) * np.log(1 - p + 1e-12)))
        metric(epoch=epoch, loss=round(loss, 4), auc=round(float(roc_auc_score(y[split:], p)), 4))
    p = model.predict_proba(xte)[:, 1]
    result = {
        "rows": int(len(x)),
        "test_rows": int(len(xte)),
        "accuracy": round(float(accuracy_score(y[split:], p > 0.5)), 4),
        "auc": round(float(roc_auc_score(y[split:], p)), 4),
        "churn_rate": round(float(y.mean()), 4),
    }
    os.makedirs("/out", exist_ok=True)
    with open("/out/model.json", "w") as f:
        json.dump({"features": EXPECTED[:3], "mean": scaler.mean_.tolist(),
                   "scale": scaler.scale_.tolist(), "coef": model.coef_[0].tolist(),
                   "intercept": float(model.intercept_[0])}, f, indent=2)
    with open("/out/metrics.json", "w") as f:
        json.dump(result, f, indent=2)
    print(f"trained on {result['rows']} rows: accuracy {result['accuracy']}, auc {result['auc']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
