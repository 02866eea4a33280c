"""The one registry of pages, and the navigation built from it for a principal.

Signed in, every page is registered with ``st.navigation`` so that a URL always reaches its
page: a page the principal may not open is registered hidden and shows "no access" from its own
``require`` check, without running any of its queries; the menu lists only the pages the
permission matrix (security.permissions) allows.

Signed out, only a sign-in page is registered, so the browser learns no page's title or path
(SECURITY.md #20). A link to a page (``/admin``) registers the sign-in page under that path too,
so the URL stays as it was and, once signed in, the same URL opens the page.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.util import calc_hash

from security.permissions import MONEY_PAGES, PAGE_ROLES, Principal


@dataclass(frozen=True)
class PageSpec:
    id: str  # the permission matrix's page id
    title: str
    icon: str  # emoji: Material icons load from the web, which offline installs cannot reach
    path: str
    default: bool = False

    @property
    def url_path(self) -> str:
        return self.id


PAGE_SPECS: tuple[PageSpec, ...] = (
    PageSpec("overview", "Overview", "📊", "app_pages/overview.py", default=True),
    PageSpec("engagement", "Engagement", "🔥", "app_pages/engagement.py"),
    PageSpec("compare", "Compare titles", "⚖️", "app_pages/compare.py"),
    PageSpec("segments", "Segments", "🎯", "app_pages/segments.py"),
    PageSpec("forecast", "Forecast", "🔮", "app_pages/forecast.py"),
    PageSpec("reports", "Reports", "📑", "app_pages/reports.py"),
    PageSpec("revenue", "Revenue", "💵", "app_pages/revenue.py"),
    PageSpec("earnings", "Earnings", "💰", "app_pages/earnings.py"),
    PageSpec("account", "My account", "👤", "app_pages/account.py"),
    PageSpec("admin", "Administration", "🛡️", "app_pages/admin.py"),
)
SPECS_BY_ID: dict[str, PageSpec] = {spec.id: spec for spec in PAGE_SPECS}


def in_menu(principal: Principal, page_id: str) -> bool:
    """True when the principal's roles grant the page (2FA is asked for when it is opened)."""
    granted = bool(principal.known_roles & PAGE_ROLES.get(page_id, frozenset()))
    return granted and (page_id not in MONEY_PAGES or principal.may("see_money"))


def _signed_out() -> None:
    """Never run: app.py draws the sign-in screen instead of running a page when signed out."""


def requested_page_id() -> str | None:
    """The registry's page id the browser's URL names, if it names one (``/admin`` -> admin)."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return None
    # What the browser asked for, before navigation resolves it: a page name from the URL on
    # first load, or the hash of a page's url_path (st.Page's own hash) on a switch. The only
    # public way to read it, st.context.url, adds the page path only once pages are registered.
    manager = ctx.pages_manager
    for spec in PAGE_SPECS:
        if manager.intended_page_name == spec.url_path or (
            manager.intended_page_script_hash == calc_hash(spec.url_path)
        ):
            return spec.id
    return None


def _sign_in_navigation() -> st.navigation:
    pages = [st.Page(_signed_out, title="Sign in", icon="🎬", url_path="sign-in", default=True)]
    requested = requested_page_id()
    if requested is not None and not SPECS_BY_ID[requested].default:
        pages.append(
            st.Page(
                _signed_out, title="Sign in", icon="🎬", url_path=requested, visibility="hidden"
            )
        )
    return st.navigation(pages, position="hidden")


def build_navigation(principal: Principal | None) -> st.navigation:
    """Register every page; show in the menu only those the principal may open.

    The menu is one flat list: with sections, Streamlit 1.67 puts each section heading as a
    ``<p>`` directly inside the menu's ``<ul>``, which screen readers mis-announce (axe-core's
    serious "list" violation).
    """
    if principal is None:
        return _sign_in_navigation()
    pages = [
        st.Page(
            spec.path,
            title=spec.title,
            icon=spec.icon,
            url_path=spec.url_path,
            default=spec.default,
            visibility="visible" if in_menu(principal, spec.id) else "hidden",
        )
        for spec in PAGE_SPECS
    ]
    return st.navigation(pages, position="sidebar")
