"""The `engine` section (conf/engine/): where the heavy steps run. `pandas`: in the stage's own process (the
default); `dask`: on a Dask cluster, local or remote (stages/lib/engine.py starts or joins it)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import SerializerFunctionWrapHandler, model_serializer, model_validator

from stages.lib.config.base import ConfigError, OptionalText, Positive, Strict, choice, expect, rule

ENGINES = ("pandas", "dask")
# Keys only the dask engine has: the pandas engine's file names none of them.
DASK_KEYS = ("scheduler", "workers", "threads_per_worker", "memory_limit", "spill_dir", "connect_timeout")
# Keys of the dask engine with a default: the pandas engine's file names none of them either.
OPTIONAL_DASK_KEYS = ("max_distinct_values",)
# A size as Dask writes it (dask.utils.parse_bytes), checked here without importing Dask.
MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|kB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+:\d+$")

Memory = Annotated[str, rule(lambda value: bool(MEMORY.match(value)), "a size such as 3GiB, 4GB or 512MiB"), expect(str)]
Address = Annotated[
    str | None,
    rule(lambda value: value is None or bool(ADDRESS.match(value)), "null or a scheduler address such as tcp://10.0.0.5:8786"),
    expect(str, type(None)),
]


class EngineConfig(Strict):
    name: Annotated[str, choice(ENGINES)]
    scheduler: Address = None
    workers: Positive | None = None
    threads_per_worker: Positive | None = None
    memory_limit: Memory | None = None
    spill_dir: OptionalText = None
    connect_timeout: Positive | None = None
    # drift-check and monitor: the most distinct values one numeric column (or the model's scores) may hold in a window
    # (or the reference) for its exact merged table (16 bytes each); past it the stage stops and names the column.
    max_distinct_values: Positive = 10_000_000

    @model_validator(mode="before")
    @classmethod
    def _keys_of_the_engine(cls, data: Any) -> Any:
        # The keys are optional in the model only because the pandas engine has none of them: dask needs all.
        if isinstance(data, dict) and data.get("name") == "dask":
            missing = [key for key in DASK_KEYS if key not in data]
            if missing:
                raise ConfigError("the dask engine needs '{key}' (see conf/engine/dask.yaml)", at=(missing[0],))
        elif isinstance(data, dict) and data.get("name") == "pandas":
            extra = [key for key in (*DASK_KEYS, *OPTIONAL_DASK_KEYS) if key in data]
            if extra:
                raise ConfigError("is a dask engine key; the pandas engine takes only `name`", at=(extra[0],))
        return data

    @model_serializer(mode="wrap")
    def _as_composed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Written back as conf/ composed it: the pandas engine's section is its name alone.
        dumped = handler(self)
        return dumped if self.distributed else {"name": dumped["name"]}

    @property
    def distributed(self) -> bool:
        return self.name == "dask"


__all__ = ["DASK_KEYS", "ENGINES", "EngineConfig"]
