"""Model aliases for every /v1 route: `STUDIO_MODEL_ALIASES` maps the names a client was set up
with to the studio's own, so a client configured for another gateway works unchanged, e.g.

    STUDIO_MODEL_ALIASES="dall-e-3=qwen-image,gpt-image-1=qwen-image-edit,gpt-4o=qwen-image-chat"

Names are compared without case. A vendor prefix needs no alias (`protolabs/qwen-image` is
`qwen-image` already); an alias may still name one, and is matched on the whole name first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ENV = "STUDIO_MODEL_ALIASES"


@dataclass(frozen=True)
class ModelAliases:
    names: Mapping[str, str] = field(default_factory=dict)   # alias as written → model id

    @classmethod
    def parse(cls, text: str) -> ModelAliases:
        """`a=b,c=d` (spaces and empty items ignored); a ValueError names a malformed item."""
        names: dict[str, str] = {}
        for item in text.split(","):
            if not item.strip():
                continue
            alias, sep, target = item.partition("=")
            if not sep or not alias.strip() or not target.strip():
                raise ValueError(f"{ENV}: {item.strip()!r} is not ALIAS=MODEL.")
            names[alias.strip()] = target.strip()
        return cls(names)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModelAliases:
        return cls.parse(env.get(ENV, ""))

    def resolve(self, raw: object) -> object:
        """The studio's name for `raw` (anything that is not an alias passes unchanged)."""
        if isinstance(raw, str):
            wanted = raw.strip().lower()
            for alias, target in self.names.items():   # a handful: no index needed
                if alias.lower() == wanted:
                    return target
        return raw

    def ids(self) -> list[str]:
        """The aliases as written in the setting (for /v1/models)."""
        return list(self.names)
