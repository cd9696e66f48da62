"""The SDK's exception and warning types."""

from typing import Optional


class TaskVaultError(Exception):
    """TaskVault's own expected failures (no CLI, bad config, unreadable input, a closed client).

    ``reason`` is the CLI's failure reason ('usage', 'config', 'input', 'cache', ...) when the
    service gave one, else 'sdk'. The message is one line.
    """

    def __init__(self, message: str, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.reason = reason or "sdk"


class TaskVaultWarning(UserWarning):
    """Why the cache was skipped (the call itself went ahead); see Client(on_warning=...)."""
