"""Configuration, read in one place: `TRUSTLEDGER_*` environment variables, overridable by a dict."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from domain.storage import DEFAULT_URL, Store

PREFIX = "TRUSTLEDGER_"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_URL
    """`sqlite:///PATH` (the embedded default) or `postgresql://USER:PASS@HOST:PORT/DB`."""

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        """From the environment (`TRUSTLEDGER_DATABASE_URL`, ...), then `overrides` (lower-case names)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            env_value = os.environ.get(PREFIX + f.name.upper())
            if env_value:
                values[f.name] = env_value
        values.update({k: v for k, v in (overrides or {}).items() if k in {f.name for f in fields(cls)}})
        return cls(**values)

    @property
    def store(self) -> Store:
        return Store.from_url(self.database_url)
