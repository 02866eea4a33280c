"""axe-core (bundled by axe-playwright-python, so it runs offline) on the sign-in page and on
every page the admin (who may open the most pages) and a creator can open: no serious or critical
violations of the WCAG 2.1 A/AA rules."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from components.navigation import PAGE_SPECS, in_menu
from security.permissions import Principal
from tests.e2e.conftest import screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
_AXE = Axe()


def _serious(tab) -> list[str]:
    result = _AXE.run(tab, options=WCAG_21_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_sign_in_page(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    assert _serious(page) == []


@pytest.mark.parametrize("role", ["admin", "creator"])
def test_every_page_the_role_can_open(app_server, page, role):
    page.goto(app_server.url)
    wait_for_app(page)
    sign_in(page, role)
    principal = Principal(username=role, display_name=role, roles={role}, mfa_verified=True)
    problems: dict[str, list[str]] = {}
    for spec in PAGE_SPECS:
        if not in_menu(principal, spec.id):
            continue
        page.goto(f"{app_server.url}/{spec.url_path}")
        wait_for_app(page)
        page.locator('[data-testid="stSidebar"]').wait_for()
        if spec.id != "account" and spec.id != "admin":
            page.locator(
                ".js-plotly-plot, [data-testid='stMetric'], [data-testid='stAlert']"
            ).first.wait_for()
        found = _serious(page)
        if found:
            screenshot(page, f"axe-{role}-{spec.id}")
            problems[spec.id] = found
    assert problems == {}
