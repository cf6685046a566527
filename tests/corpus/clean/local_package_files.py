"""Reading files that ship next to the module: local by construction."""

import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_defaults():
    path = os.path.join(_HERE, "defaults.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
