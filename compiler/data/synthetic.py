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

``data.scale`` (``generate(scale=...)``) multiplies customers, products and lines with the same
structure: ×10 is 4,000 customers, 10,700 products and 150,000 lines, ×100 40,000 / 107,000 /
1.5M (for ``benchmarks/scale.py``); ×1 is the data above, unchanged.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
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


def generate(
    seed: int = DEFAULT_SEED, *, scale: int = 1, include_latent: bool = False
) -> pd.DataFrame:
    """Generate the dataset in memory.

    Columns: ``customer_id, date, cust_value, product_id, category, sub_category, sales``, sorted
    by (date, customer_id, product_id). ``date`` is a ``datetime64[ns]`` day. With
    ``include_latent`` the hidden ``segment`` and ``price_tier`` are added (for tests and
    analysis only; the cached file never has them).

    ``scale`` multiplies the customers, the catalogue and the lines (×10: 4,000 customers,
    10,700 products, 150,000 lines) over the same two years, with the same segments, sub-category
    profiles, price tiers and rhythm. ×1 is the original data, drawn customer by customer;
    larger scales draw every line at once (``_draw_lines_vectorized``), from the same
    distributions, so ×100 takes seconds.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    n_customers, n_products = N_CUSTOMERS * scale, N_PRODUCTS * scale
    rng = np.random.Generator(np.random.PCG64(seed))

    sub_names = [s for subs in CATALOG.values() for s, _ in subs]
    sub_category_of = {s: c for c, subs in CATALOG.items() for s, _ in subs}
    sub_base_price = np.array([p for subs in CATALOG.values() for _, p in subs])
    n_sub = len(sub_names)
    sub_index = {s: i for i, s in enumerate(sub_names)}

    # --- products: sub-category, popularity inside it, price tier and price ---
    min_per_sub = 20 * scale
    sizes = min_per_sub + rng.multinomial(
        n_products - min_per_sub * n_sub, rng.dirichlet(np.full(n_sub, 4.0))
    )
    prod_sub = np.repeat(np.arange(n_sub), sizes)
    popularity = np.empty(n_products)
    start = 0
    for size in sizes:
        ranks = rng.permutation(size)
        popularity[start : start + size] = 1.0 / (ranks + 2.0) ** 0.7
        popularity[start : start + size] /= popularity[start : start + size].sum()
        start += size
    tier_mult = np.array([m for _, m, _ in PRICE_TIERS])
    prod_tier = rng.choice(len(PRICE_TIERS), size=n_products, p=[s for _, _, s in PRICE_TIERS])
    price = np.round(
        sub_base_price[prod_sub] * tier_mult[prod_tier] * rng.lognormal(0.0, 0.15, n_products), 2
    )
    price = np.maximum(price, 0.1)
    # Shuffle so product ids carry no sub-category order.
    order = rng.permutation(n_products)
    prod_sub, popularity, prod_tier, price = (
        prod_sub[order],
        popularity[order],
        prod_tier[order],
        price[order],
    )
    log_tier = np.log(tier_mult[prod_tier])

    # --- customers: segment, value, personal preferences, favourites, activity ---
    seg_share = np.array([s for _, s, _, _ in SEGMENTS])
    cust_seg = rng.choice(len(SEGMENTS), size=n_customers, p=seg_share / seg_share.sum())
    seg_value = np.array([v for _, _, v, _ in SEGMENTS])
    cust_value = np.round(1000.0 * seg_value[cust_seg] * rng.lognormal(0.0, 0.6, n_customers), 2)
    log_value = np.log(cust_value)
    value_z = (log_value - log_value.mean()) / log_value.std()

    seg_pref = np.full((len(SEGMENTS), n_sub), _BACKGROUND_PREF)
    for k, (_, _, _, prefs) in enumerate(SEGMENTS):
        for sub, weight in prefs.items():
            seg_pref[k, sub_index[sub]] = weight
    seg_pref /= seg_pref.sum(axis=1, keepdims=True)

    activity = rng.lognormal(0.0, 0.7, n_customers)
    min_per_customer = 5
    n_lines = min_per_customer + rng.multinomial(
        N_TRANSACTIONS * scale - min_per_customer * n_customers, activity / activity.sum()
    )

    day_of_week = (np.arange(N_DAYS) + pd.Timestamp(START_DATE).day_of_week) % 7
    day_of_year = np.arange(N_DAYS) % 365
    day_weight = _WEEKDAY_ORDERS[day_of_week] * (
        1.0 + 0.15 * np.sin(2 * np.pi * (day_of_year - 100) / 365.0)
    )
    day_p = day_weight / day_weight.sum()

    customers = _Customers(cust_seg, value_z, n_lines)
    catalogue = _Catalogue(prod_sub, popularity, prod_tier, log_tier)
    draw = _draw_lines_per_customer if scale == 1 else _draw_lines_vectorized
    cust, prod, day = draw(rng, customers, catalogue, seg_pref, day_p)

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

    # Sorted by (date, customer, product, sales), stably: ids are zero-padded to one width, so
    # their integer order is their text order, and sorting the integers is sorting the frame.
    rows = np.lexsort((sales, prod, cust, day))
    cust, prod, day, sales = cust[rows], prod[rows], day[rows], sales[rows]
    customer_ids = _identifiers("C", n_customers)
    product_ids = _identifiers("P", n_products)
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
    return frame


@dataclass(frozen=True)
class _Customers:
    segment: np.ndarray  # [customers] index into SEGMENTS
    value_z: np.ndarray  # [customers] standardized log value
    n_lines: np.ndarray  # [customers] lines to draw


@dataclass(frozen=True)
class _Catalogue:
    sub: np.ndarray  # [products] sub-category index
    popularity: np.ndarray  # [products] Zipf weight, summing to 1 inside each sub-category
    tier: np.ndarray  # [products] index into PRICE_TIERS
    log_tier: np.ndarray  # [products] log of the tier's price multiplier


def _product_weights(catalogue: _Catalogue, sub_pref: np.ndarray, value_z: float) -> np.ndarray:
    """One customer's purchase probability of each product: the customer's sub-category
    preference x the product's popularity x the lean of high-value customers to premium."""
    weights = (
        sub_pref[catalogue.sub]
        * catalogue.popularity
        * np.exp(_TIER_AFFINITY * value_z * catalogue.log_tier)
    )
    return weights / weights.sum()


def _draw_lines_per_customer(
    rng: np.random.Generator,
    customers: _Customers,
    catalogue: _Catalogue,
    seg_pref: np.ndarray,
    day_p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, product, day) of every line, one customer at a time: the ×1 data's own draws
    (kept in this order so the default dataset stays byte-identical)."""
    n_products = catalogue.sub.size
    cust_col, prod_col, day_col = [], [], []
    for c in range(customers.segment.size):
        sub_pref = rng.dirichlet(_PREF_CONCENTRATION * seg_pref[customers.segment[c]] + 0.05)
        weights = _product_weights(catalogue, sub_pref, customers.value_z[c])
        n_fav = int(rng.integers(4, 13))
        favourites = rng.choice(n_products, size=n_fav, replace=False, p=weights)
        fav_weights = rng.dirichlet(np.ones(n_fav))
        p_repeat = rng.uniform(0.35, 0.65)
        n = int(customers.n_lines[c])
        is_repeat = rng.random(n) < p_repeat
        products = rng.choice(n_products, size=n, p=weights)
        products[is_repeat] = rng.choice(favourites, size=int(is_repeat.sum()), p=fav_weights)
        cust_col.append(np.full(n, c))
        prod_col.append(products)
        day_col.append(rng.choice(N_DAYS, size=n, p=day_p))
    return np.concatenate(cust_col), np.concatenate(prod_col), np.concatenate(day_col)


def _draw_lines_vectorized(
    rng: np.random.Generator,
    customers: _Customers,
    catalogue: _Catalogue,
    seg_pref: np.ndarray,
    day_p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, product, day) of every line, all customers at once, from the distributions
    of ``_draw_lines_per_customer``.

    A customer's product weights factor into (sub-category, tier) cell x popularity inside the
    cell, so a product is drawn as a cell from the customer's [customers, cells] table, then a
    product from the cell's popularity: memory grows with customers + products + lines, never
    customers x products. The Dirichlet draws are normalized Gamma draws; favourites are drawn
    with replacement (a repeated favourite merges two weights; the per-customer path draws them
    without).
    """
    n_customers = customers.segment.size
    n_sub, n_tiers = seg_pref.shape[1], len(PRICE_TIERS)
    sub_pref = rng.standard_gamma(_PREF_CONCENTRATION * seg_pref[customers.segment] + 0.05)
    sub_pref /= sub_pref.sum(axis=1, keepdims=True)

    # Products grouped by cell; within a cell, a product's share of the cell's popularity.
    cell = catalogue.sub * n_tiers + catalogue.tier
    by_cell = np.argsort(cell, kind="stable")
    cell_bounds = np.searchsorted(cell[by_cell], np.arange(n_sub * n_tiers + 1))
    cell_mass = np.bincount(cell, weights=catalogue.popularity, minlength=n_sub * n_tiers)
    tier_lean = np.exp(
        _TIER_AFFINITY * customers.value_z[:, None] * np.log([m for _, m, _ in PRICE_TIERS])
    )
    cell_weights = (sub_pref[:, :, None] * tier_lean[:, None, :]).reshape(n_customers, -1)
    cell_weights *= cell_mass
    cell_bounds_per_customer = np.arange(n_customers + 1) * cell_weights.shape[1]

    def draw_products(owners: np.ndarray) -> np.ndarray:
        cells = _draw_in_groups(rng, cell_weights.ravel(), cell_bounds_per_customer, owners)
        cells -= owners * cell_weights.shape[1]
        in_cell = _draw_in_groups(rng, catalogue.popularity[by_cell], cell_bounds, cells)
        return by_cell[in_cell]

    n_fav = rng.integers(4, 13, size=n_customers)
    fav_owner = np.repeat(np.arange(n_customers), n_fav)
    favourites = draw_products(fav_owner)
    fav_weights = rng.standard_exponential(fav_owner.size)  # Dirichlet(1, ..., 1), normalized
    fav_bounds = np.concatenate([[0], np.cumsum(n_fav)])
    p_repeat = rng.uniform(0.35, 0.65, size=n_customers)

    cust = np.repeat(np.arange(n_customers), customers.n_lines)
    is_repeat = rng.random(cust.size) < p_repeat[cust]
    prod = np.empty(cust.size, dtype=np.int64)
    prod[~is_repeat] = draw_products(cust[~is_repeat])
    prod[is_repeat] = favourites[_draw_in_groups(rng, fav_weights, fav_bounds, cust[is_repeat])]
    day = rng.choice(N_DAYS, size=cust.size, p=day_p)
    return cust, prod, day


def _draw_in_groups(
    rng: np.random.Generator, weights: np.ndarray, bounds: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """For each entry of ``groups``, an index into ``weights`` drawn from the group's slice
    ``weights[bounds[g]:bounds[g + 1]]`` in proportion to the weights (inverse-CDF sampling,
    one ``searchsorted`` for all draws).

    Each group's cumulative shares, shifted by the group number, form one increasing array;
    ``g + u`` (u uniform in [0, 1)) falls inside group ``g``'s stretch of it.
    """
    n_groups = bounds.size - 1
    group_of = np.repeat(np.arange(n_groups), np.diff(bounds))
    cumulative = np.cumsum(weights)
    before = np.concatenate([[0.0], cumulative])[bounds[:-1]]
    totals = np.concatenate([[0.0], cumulative])[bounds[1:]] - before
    shares = (cumulative - before[group_of]) / totals[group_of]
    shares[bounds[1:][bounds[1:] > bounds[:-1]] - 1] = 1.0  # each group's last share is exact
    picks = np.searchsorted(group_of + shares, groups + rng.random(groups.size), side="right")
    return np.clip(picks, bounds[groups], bounds[groups + 1] - 1)


def _identifiers(prefix: str, count: int) -> np.ndarray:
    """``C0001``, ``C0002``, ...: zero-padded to one width (at least 4), so text order is
    number order."""
    width = max(4, len(str(count)))
    return np.array([f"{prefix}{i + 1:0{width}d}" for i in range(count)], dtype=object)


def cache_path(
    cache_dir: str | os.PathLike[str] | None = None, seed: int = DEFAULT_SEED, *, scale: int = 1
) -> Path:
    """Where the cached Parquet file for this generator version, seed and scale lives (×1 keeps
    the name it always had)."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    suffix = "" if scale == 1 else f"-x{scale}"
    return base / f"synthetic_b2b-v{GENERATOR_VERSION}-seed{seed}{suffix}.parquet"


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


def ensure_cached(cache_dir: str | os.PathLike[str] | None = None, *, scale: int = 1) -> Path:
    """Generate the dataset (at ``scale``) into the cache if it is not there (or unreadable);
    return its path."""
    path = cache_path(cache_dir, scale=scale)
    if path.is_file():
        try:
            pq.read_metadata(path)
            return path
        except (OSError, pa.ArrowException):
            pass  # a corrupt cache entry (e.g. a disk-full write) is regenerated, not trusted
    write_parquet(generate(DEFAULT_SEED, scale=scale), path)
    return path


def describe(scale: int = 1) -> str:
    """One line naming the dataset, for logs and ``LoadedData.source_description``."""
    n_sub = sum(len(s) for s in CATALOG.values())
    size = "" if scale == 1 else f", scale x{scale}"
    return (
        f"embedded synthetic B2B dataset v{GENERATOR_VERSION} (seed {DEFAULT_SEED}{size}: "
        f"{N_TRANSACTIONS * scale} lines, {N_CUSTOMERS * scale} customers, "
        f"{N_PRODUCTS * scale} catalogue products, "
        f"{len(CATALOG)} categories / {n_sub} sub-categories)"
    )
