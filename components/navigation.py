"""The one registry of pages, and the navigation built from it for a principal.

Every page is registered with ``st.navigation`` so that a URL always reaches its page: a page
the principal may not open is registered hidden and shows "no access" from its own ``require``
check, without running any of its queries; the menu lists only the pages the permission matrix
(security.permissions) allows. Signed out, the menu is hidden and every URL shows the sign-in
form, then the asked-for page after sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

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
    PageSpec("account", "My account", "👤", "app_pages/account.py"),
    PageSpec("admin", "Administration", "🛡️", "app_pages/admin.py"),
)
SPECS_BY_ID: dict[str, PageSpec] = {spec.id: spec for spec in PAGE_SPECS}


def in_menu(principal: Principal, page_id: str) -> bool:
    """True when the principal's roles grant the page (2FA is asked for when it is opened)."""
    granted = bool(principal.known_roles & PAGE_ROLES.get(page_id, frozenset()))
    return granted and (page_id not in MONEY_PAGES or principal.may("see_money"))


def build_navigation(principal: Principal | None) -> st.navigation:
    """Register every page; show in the menu only those the principal may open.

    The menu is one flat list: with sections, Streamlit 1.67 puts each section heading as a
    ``<p>`` directly inside the menu's ``<ul>``, which screen readers mis-announce (axe-core's
    serious "list" violation).
    """
    pages = [
        st.Page(
            spec.path,
            title=spec.title,
            icon=spec.icon,
            url_path=spec.url_path,
            default=spec.default,
            visibility="visible"
            if principal is not None and in_menu(principal, spec.id)
            else "hidden",
        )
        for spec in PAGE_SPECS
    ]
    return st.navigation(pages, position="sidebar" if principal else "hidden")
