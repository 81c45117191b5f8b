"""Sample applications for the sandbox: ``shop`` (YAML in ``apps/shop/``) and its data generator.

await install_shop(url)                 # seed the YAML (server-side apply)
await fill(url, "shop", "200MB")        # fill its PV directories with test data
"""

from __future__ import annotations

from pathlib import Path

from sandbox.apps.filling import Filled, fill, fill_directory, parse_size
from sandbox.seeding import seed

SHOP_DIR = Path(__file__).parent / "shop"


async def install_shop(server: str) -> list[str]:
    """Apply the shop application to the cluster at ``server``; returns ``kind/name`` per object."""
    return await seed(server, [SHOP_DIR])


__all__ = ["SHOP_DIR", "Filled", "fill", "fill_directory", "install_shop", "parse_size"]
