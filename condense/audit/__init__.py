"""Privacy and reconstruction audits of a SynthSet: memorization, membership inference, reconstruction."""
from .base import CHECKS, AuditContext, CheckResult, register_check
from .runner import run_audit

__all__ = ["CHECKS", "AuditContext", "CheckResult", "register_check", "run_audit"]
