"""The console's application keys, in a leaf module every console module may import."""

from __future__ import annotations

import jinja2
from aiohttp import web

TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
ENABLED = web.AppKey("console_enabled", bool)
