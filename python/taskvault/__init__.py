"""TaskVault's Python SDK: results cached on the same cache as the ``taskvault`` CLI.

``from taskvault.sdk import Client`` is the entry point; see docs/python.md.
"""

from .errors import TaskVaultError, TaskVaultWarning
from .sdk import Client, FileRef, RunResult

__all__ = ["Client", "FileRef", "RunResult", "TaskVaultError", "TaskVaultWarning"]
__version__ = "0.1.0"
