#!/usr/bin/env python3
"""Generate a synthetic customer table with PII for the Cordon demo and tests.

    gen_customers.py ROWS [--seed N] [--marker TEXT]  > customers.csv

Columns: name, email, ssn, age, tenure, spend, churned. Every name/email/ssn
is fake. `--marker TEXT` is embedded in every PII field so a leak test can
search the disk for it. Churn depends on tenure and spend (plus noise) so
a model has something real to learn.
"""
import argparse
import csv
import math
import random
import sys

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Dennis", "Margaret", "Linus",
         "Radia", "Frances", "Donald", "Leslie", "Niklaus", "Shafi", "Whitfield", "Martin"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Ritchie",
        "Hamilton", "Torvalds", "Perlman", "Allen", "Knuth", "Lamport", "Wirth", "Goldwasser",
        "O'Neil", "Diffie, Jr."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", type=int)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--marker", default="")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = csv.writer(sys.stdout, lineterminator="\r\n")
    out.writerow(["name", "email", "ssn", "age", "tenure", "spend", "churned"])
    for i in range(args.rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{last}, {first}{args.marker}"          # embedded comma: needs quoting
        email = f"{first.lower()}.{i}{args.marker}@example.com"
        ssn = f"{rng.randint(100, 899):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}{args.marker}"
        age = rng.randint(18, 90)
        tenure = rng.randint(0, 120)
        spend = round(rng.lognormvariate(4.0, 0.8), 2)
        z = 1.2 - 0.045 * tenure - 0.012 * spend + 0.01 * (age - 45) + rng.gauss(0, 0.7)
        churned = 1 if 1 / (1 + math.exp(-z)) > 0.5 else 0
        out.writerow([name, email, ssn, age, tenure, spend, churned])


if __name__ == "__main__":
    main()
