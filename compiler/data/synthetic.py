"""The embedded default dataset: deterministic synthetic B2B transactions.

A wholesaler with a catalogue of 1,070 products (3 categories, 17 sub-categories, three price
tiers; about 1,000 of them sell) serves 400 business customers over two years (2023-01-01 ..
2024-12-31), 15,000 transaction lines. The data
has structure a recommender can learn, so a trained model measurably beats simple baselines:

- each customer belongs to a latent *segment* (cafe, office, hotel, ...) with strong
  sub-category preferences, varied per customer (a Dirichlet draw around the segment's profile);
- each customer has a handful of favourite products they re-buy (repeat purchases);
- products have a popularity (Zipf inside their sub-category) and a price tier; high-value
  customers lean to premium products;
- ``sales`` = quantity x unit price, where quantity grows with the customer's value and falls
  with price, plus a weekday effect; order counts follow a weekly (and mild yearly) rhythm.

Everything is drawn from one ``numpy.random.Generator`` in a fixed order, and no step depends on
hash order, so the frame (and the cached Parquet file) is byte-identical across runs and
``PYTHONHASHSEED`` values for a given library version.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from compiler.data.paths import default_cache_dir

#: Bump whenever the generated data changes; it is part of the cache key.
GENERATOR_VERSION = 1
DEFAULT_SEED = 20240917

N_CUSTOMERS = 400
N_PRODUCTS = 1070  # catalogue size; the long tail leaves ~1,000 products with sales
N_TRANSACTIONS = 15_000
START_DATE = "2023-01-01"
N_DAYS = 731  # 2023 + leap year 2024

#: Raw columns of the dataset and their feature kinds (what ``load_data``'s ``required`` uses).
SYNTHETIC_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "date": "timestamp",
    "cust_value": "float",
    "product_id": "string",
    "category": "string",
    "sub_category": "string",
    "sales": "float",
}
SYNTHETIC_TARGET = "sales"

# category -> [(sub_category, typical unit price in EUR)]
CATALOG: dict[str, list[tuple[str, float]]] = {
    "Beverages": [
        ("Coffee", 14.0),
        ("Tea", 7.5),
        ("Soft Drinks", 2.2),
        ("Juice", 3.4),
        ("Bottled Water", 0.9),
        ("Energy Drinks", 2.8),
    ],
    "Food": [
        ("Crisps", 1.6),
        ("Confectionery", 2.4),
        ("Biscuits", 2.0),
        ("Nuts & Dried Fruit", 5.5),
        ("Ready Meals", 4.5),
        ("Breakfast Cereals", 3.8),
    ],
    "Household": [
        ("Detergents", 9.0),
        ("Paper Products", 16.0),
        ("Disinfectants", 6.5),
        ("Hand Soap", 4.2),
        ("Bin Bags", 7.0),
    ],
}

# segment -> (share of customers, customer value scale, sub-category preference weights);
# sub-categories not listed get _BACKGROUND_PREF so every customer occasionally buys anything.
# fmt: off
SEGMENTS: list[tuple[str, float, float, dict[str, float]]] = [
    ("cafe", 0.22, 1.0, {"Coffee": 10, "Tea": 6, "Juice": 3, "Soft Drinks": 2,
                         "Bottled Water": 2, "Biscuits": 4, "Confectionery": 2,
                         "Paper Products": 3, "Hand Soap": 1}),
    ("office", 0.20, 1.3, {"Coffee": 6, "Tea": 5, "Bottled Water": 5, "Biscuits": 3,
                           "Paper Products": 6, "Hand Soap": 3, "Bin Bags": 2,
                           "Disinfectants": 1}),
    ("convenience_store", 0.18, 1.6, {"Soft Drinks": 7, "Energy Drinks": 6, "Crisps": 8,
                                      "Confectionery": 8, "Bottled Water": 3, "Juice": 2}),
    ("hotel", 0.14, 2.5, {"Detergents": 6, "Paper Products": 5, "Disinfectants": 4,
                          "Hand Soap": 5, "Bottled Water": 3, "Juice": 3,
                          "Breakfast Cereals": 5, "Tea": 2, "Coffee": 2}),
    ("gym", 0.12, 1.0, {"Energy Drinks": 8, "Bottled Water": 8, "Nuts & Dried Fruit": 6,
                        "Juice": 3, "Disinfectants": 3, "Hand Soap": 2}),
    ("school_canteen", 0.14, 2.0, {"Juice": 5, "Bottled Water": 4, "Ready Meals": 8,
                                   "Breakfast Cereals": 5, "Biscuits": 3, "Disinfectants": 2,
                                   "Paper Products": 3}),
]
# fmt: on
_BACKGROUND_PREF = 0.15
_PREF_CONCENTRATION = 25.0  # higher = customers stick closer to their segment's profile

PRICE_TIERS: list[tuple[str, float, float]] = [  # (name, price multiplier, share of products)
    ("budget", 0.6, 0.3),
    ("standard", 1.0, 0.5),
    ("premium", 1.8, 0.2),
]
_TIER_AFFINITY = 0.8  # how strongly high-value customers lean to premium products

# Monday..Sunday: relative number of orders, and log-quantity effect (Monday restocking).
_WEEKDAY_ORDERS = np.array([1.25, 1.15, 1.10, 1.05, 1.00, 0.35, 0.10])
_WEEKDAY_QTY = np.array([0.20, 0.0, 0.0, 0.0, 0.10, -0.30, -0.30])


def generate(seed: int = DEFAULT_SEED, *, include_latent: bool = False) -> pd.DataFrame:
    """Generate the dataset in memory.

    Columns: ``customer_id, date, cust_value, product_id, category, sub_category, sales``, sorted
    by (date, customer_id, product_id). ``date`` is a ``datetime64[ns]`` day. With
    ``include_latent`` the hidden ``segment`` and ``price_tier`` are added (for tests and
    analysis only; the cached file never has them).
    """
    rng = np.random.Generator(np.random.PCG64(seed))

    sub_names = [s for subs in CATALOG.values() for s, _ in subs]
    sub_category_of = {s: c for c, subs in CATALOG.items() for s, _ in subs}
    sub_base_price = np.array([p for subs in CATALOG.values() for _, p in subs])
    n_sub = len(sub_names)
    sub_index = {s: i for i, s in enumerate(sub_names)}

    # --- products: sub-category, popularity inside it, price tier and price ---
    min_per_sub = 20
    sizes = min_per_sub + rng.multinomial(
        N_PRODUCTS - min_per_sub * n_sub, rng.dirichlet(np.full(n_sub, 4.0))
    )
    prod_sub = np.repeat(np.arange(n_sub), sizes)
    popularity = np.empty(N_PRODUCTS)
    start = 0
    for size in sizes:
        ranks = rng.permutation(size)
        popularity[start : start + size] = 1.0 / (ranks + 2.0) ** 0.7
        popularity[start : start + size] /= popularity[start : start + size].sum()
        start += size
    tier_mult = np.array([m for _, m, _ in PRICE_TIERS])
    prod_tier = rng.choice(len(PRICE_TIERS), size=N_PRODUCTS, p=[s for _, _, s in PRICE_TIERS])
    price = np.round(
        sub_base_price[prod_sub] * tier_mult[prod_tier] * rng.lognormal(0.0, 0.15, N_PRODUCTS), 2
    )
    price = np.maximum(price, 0.1)
    # Shuffle so product ids carry no sub-category order.
    order = rng.permutation(N_PRODUCTS)
    prod_sub, popularity, prod_tier, price = (
        prod_sub[order],
        popularity[order],
        prod_tier[order],
        price[order],
    )
    log_tier = np.log(tier_mult[prod_tier])

    # --- customers: segment, value, personal preferences, favourites, activity ---
    seg_share = np.array([s for _, s, _, _ in SEGMENTS])
    cust_seg = rng.choice(len(SEGMENTS), size=N_CUSTOMERS, p=seg_share / seg_share.sum())
    seg_value = np.array([v for _, _, v, _ in SEGMENTS])
    cust_value = np.round(1000.0 * seg_value[cust_seg] * rng.lognormal(0.0, 0.6, N_CUSTOMERS), 2)
    log_value = np.log(cust_value)
    value_z = (log_value - log_value.mean()) / log_value.std()

    seg_pref = np.full((len(SEGMENTS), n_sub), _BACKGROUND_PREF)
    for k, (_, _, _, prefs) in enumerate(SEGMENTS):
        for sub, weight in prefs.items():
            seg_pref[k, sub_index[sub]] = weight
    seg_pref /= seg_pref.sum(axis=1, keepdims=True)

    activity = rng.lognormal(0.0, 0.7, N_CUSTOMERS)
    min_per_customer = 5
    n_lines = min_per_customer + rng.multinomial(
        N_TRANSACTIONS - min_per_customer * N_CUSTOMERS, activity / activity.sum()
    )

    day_of_week = (np.arange(N_DAYS) + pd.Timestamp(START_DATE).day_of_week) % 7
    day_of_year = np.arange(N_DAYS) % 365
    day_weight = _WEEKDAY_ORDERS[day_of_week] * (
        1.0 + 0.15 * np.sin(2 * np.pi * (day_of_year - 100) / 365.0)
    )
    day_p = day_weight / day_weight.sum()

    cust_col, prod_col, day_col = [], [], []
    for c in range(N_CUSTOMERS):
        sub_pref = rng.dirichlet(_PREF_CONCENTRATION * seg_pref[cust_seg[c]] + 0.05)
        weights = sub_pref[prod_sub] * popularity * np.exp(_TIER_AFFINITY * value_z[c] * log_tier)
        weights /= weights.sum()
        n_fav = int(rng.integers(4, 13))
        favourites = rng.choice(N_PRODUCTS, size=n_fav, replace=False, p=weights)
        fav_weights = rng.dirichlet(np.ones(n_fav))
        p_repeat = rng.uniform(0.35, 0.65)
        n = int(n_lines[c])
        is_repeat = rng.random(n) < p_repeat
        products = rng.choice(N_PRODUCTS, size=n, p=weights)
        products[is_repeat] = rng.choice(favourites, size=int(is_repeat.sum()), p=fav_weights)
        cust_col.append(np.full(n, c))
        prod_col.append(products)
        day_col.append(rng.choice(N_DAYS, size=n, p=day_p))
    cust = np.concatenate(cust_col)
    prod = np.concatenate(prod_col)
    day = np.concatenate(day_col)

    # --- sales: quantity from customer value, price and weekday; sales = qty * price ---
    log_qty = (
        1.6
        + 0.7 * value_z[cust]
        - 0.45 * np.log(price[prod])
        + _WEEKDAY_QTY[day_of_week[day]]
        + rng.normal(0.0, 0.35, cust.size)
    )
    quantity = np.maximum(1.0, np.round(np.exp(log_qty)))
    sales = np.round(quantity * price[prod], 2)

    customer_ids = np.array([f"C{i + 1:04d}" for i in range(N_CUSTOMERS)], dtype=object)
    product_ids = np.array([f"P{i + 1:04d}" for i in range(N_PRODUCTS)], dtype=object)
    sub_arr = np.array(sub_names, dtype=object)
    cat_arr = np.array([sub_category_of[s] for s in sub_names], dtype=object)
    dates = (np.datetime64(START_DATE, "D") + day.astype("timedelta64[D]")).astype("datetime64[ns]")
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids[cust],
            "date": dates,
            "cust_value": cust_value[cust],
            "product_id": product_ids[prod],
            "category": cat_arr[prod_sub[prod]],
            "sub_category": sub_arr[prod_sub[prod]],
            "sales": sales,
        }
    )
    if include_latent:
        frame["segment"] = np.array([s[0] for s in SEGMENTS], dtype=object)[cust_seg[cust]]
        frame["price_tier"] = np.array([t[0] for t in PRICE_TIERS], dtype=object)[prod_tier[prod]]
    frame = frame.sort_values(
        ["date", "customer_id", "product_id", "sales"], kind="mergesort"
    ).reset_index(drop=True)
    return frame


def cache_path(cache_dir: str | os.PathLike[str] | None = None, seed: int = DEFAULT_SEED) -> Path:
    """Where the cached Parquet file for this generator version and seed lives."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / f"synthetic_b2b-v{GENERATOR_VERSION}-seed{seed}.parquet"


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically (temp file in the same dir, then rename).

    Readers never see a half-written file, and two processes generating at once both leave the
    same bytes behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # A per-writer temp name (not mkstemp, which would leave the file mode 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_cached(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Generate the dataset into the cache if it is not there (or unreadable); return its path."""
    path = cache_path(cache_dir)
    if path.is_file():
        try:
            pq.read_metadata(path)
            return path
        except (OSError, pa.ArrowException):
            pass  # a corrupt cache entry (e.g. a disk-full write) is regenerated, not trusted
    write_parquet(generate(DEFAULT_SEED), path)
    return path


def describe() -> str:
    """One line naming the dataset, for logs and ``LoadedData.source_description``."""
    n_sub = sum(len(s) for s in CATALOG.values())
    return (
        f"embedded synthetic B2B dataset v{GENERATOR_VERSION} (seed {DEFAULT_SEED}: "
        f"{N_TRANSACTIONS} lines, {N_CUSTOMERS} customers, {N_PRODUCTS} catalogue products, "
        f"{len(CATALOG)} categories / {n_sub} sub-categories)"
    )
