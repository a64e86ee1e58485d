"""Privacy and reconstruction audits of a SynthSet: memorization, membership inference, reconstruction.

Importing the package imports every check module, which registers its check.
"""
from . import memorization, mia, reconstruction  # noqa: F401  (the checks register themselves)
from .base import CHECKS, AuditContext, CheckResult, register_check
from .runner import run_audit

__all__ = ["CHECKS", "AuditContext", "CheckResult", "register_check", "run_audit"]
