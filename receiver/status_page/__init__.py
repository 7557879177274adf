"""The operator's status page: server-rendered HTML (Jinja2), the same data as JSON."""

from receiver.status_page.data import PageOptions
from receiver.status_page.routes import StatusPage, status_routes

__all__ = ["PageOptions", "StatusPage", "status_routes"]
