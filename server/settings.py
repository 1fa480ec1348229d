"""Editor settings: ``initializationOptions`` overlaid by the workspace's settings (pushed with
``workspace/didChangeConfiguration`` or pulled with ``workspace/configuration``), merged into
one ``ServerOptions``."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from .options import SECTION, ServerOptions, parse_options

log = logging.getLogger(__name__)


class Settings:
    """One client's two sources of settings and the options merged from them."""

    def __init__(self) -> None:
        self.initialization: Any = None
        self.workspace: Any = None
        self.options = ServerOptions()

    def merge(self) -> list[str]:
        """Recompute ``options`` from both sources (the workspace's win); returns the problems
        found (an option with a problem keeps its default)."""
        merged: dict[str, Any] = {}
        problems: list[str] = []
        for settings in (self.initialization, self.workspace):
            if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
                settings = settings[SECTION]
            if settings is None:
                continue
            if isinstance(settings, dict):
                merged.update(settings)
            else:
                problems.append(f"settings must be an object, got {type(settings).__name__}")
        self.options, found = parse_options(merged)
        return problems + found


def pushed_section(settings: Any) -> dict[str, Any] | None:
    """The ``ghostwrite`` section of didChangeConfiguration's settings; None when it has none
    (clients that push nothing, or everything but our section, are asked instead)."""
    if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
        return settings[SECTION]
    return None


async def pull(server: LanguageServer) -> Any:
    """The client's ``ghostwrite`` settings through workspace/configuration; None when it cannot
    answer, fails or has none."""
    workspace = getattr(server.client_capabilities, "workspace", None)
    if not getattr(workspace, "configuration", None):
        return None
    try:
        result = await server.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as err:  # a client's failure here must not stop the server
        log.warning("workspace/configuration failed: %s", err)
        return None
    return result[0] if result else None
