"""Use cases of the web tier; each owns its transaction (views stay thin)."""

from web.services.staff import authenticate_staff, end_all_staff_sessions

__all__ = ["authenticate_staff", "end_all_staff_sessions"]
