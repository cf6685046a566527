"""Tiny transactions with learnable structure, made by the tests themselves (numpy only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

RAW_SCHEMA = {
    "customer_id": "string",
    "date": "int",
    "cust_value": "float",
    "product_id": "string",
    "category": "string",
    "sub_category": "string",
    "sales": "float",
}


def tiny_transactions(rows: int = 1500, seed: int = 3) -> pd.DataFrame:
    """Customers in three segments buy mostly from their segment's category."""
    rng = np.random.default_rng(seed)
    customers, products = 60, 90
    segment = rng.integers(0, 3, customers)
    value = rng.lognormal(3.0, 0.6, customers).astype(np.float32)
    category = np.arange(products) % 3
    sub = category * 4 + rng.integers(0, 4, products)
    price = rng.lognormal(1.0, 0.5, products)
    buyer = rng.integers(0, customers, rows)
    same = rng.random(rows) < 0.8
    pool = [np.flatnonzero(category == c) for c in range(3)]
    product = np.where(
        same,
        [rng.choice(pool[segment[b]]) for b in buyer],
        rng.integers(0, products, rows),
    )
    start = 1_672_531_200  # 2023-01-01
    date = start + rng.integers(0, 730, rows) * 86_400
    sales = price[product] * np.sqrt(value[buyer]) * rng.lognormal(0.0, 0.2, rows)
    return pd.DataFrame({
        "customer_id": [f"C{b:03d}" for b in buyer],
        "date": date.astype(np.int64),
        "cust_value": value[buyer],
        "product_id": [f"P{p:03d}" for p in product],
        "category": [f"cat{c}" for c in category[product]],
        "sub_category": [f"sub{s:02d}" for s in sub[product]],
        "sales": sales.astype(np.float32),
    })


def split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    n = len(frame)
    return {
        "train": frame.iloc[: int(n * 0.8)],
        "eval": frame.iloc[int(n * 0.8): int(n * 0.9)],
        "test": frame.iloc[int(n * 0.9):],
    }
