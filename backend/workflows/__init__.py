"""Templates, roles, binding and preflight (see docs/architecture.md and docs/workflows.md)."""

from backend.workflows.binding import bind, new_nonce, output_prefix
from backend.workflows.requirements import Readiness, Requirements, check_ready, requirements
from backend.workflows.template import (
    MissingRole,
    Template,
    TemplateError,
    TemplateLibrary,
    load_template,
)

__all__ = [
    "MissingRole",
    "Readiness",
    "Requirements",
    "Template",
    "TemplateError",
    "TemplateLibrary",
    "bind",
    "check_ready",
    "load_template",
    "new_nonce",
    "output_prefix",
    "requirements",
]
