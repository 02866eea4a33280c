"""What every run of the app shares: settings, the extract store and the security services.

Built once per server process (``st.cache_resource``) and checked on the way: a weak or sample
cookie key, a missing or wrong extract key, or unreadable settings stop the app with a message
that says what to fix, instead of running insecurely.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from data.extract import build_cache
from data.extract.store import ExtractError, ExtractStore, store_from_settings
from data.queries.filters import Scope
from data.queries.money import check_currency
from security.client_address import Network, ProxySettingError, parse_trusted_proxies
from security.clock import Clock, utcnow
from security.demo import ensure_demo_accounts
from security.permissions import Principal
from security.service import Security
from security.sso import sso_config
from settings import Settings, SettingsError, load_settings

# The app's clock. Sessions, throttles and 2FA read time through it, so tests can move time
# (idle timeout, lock expiry) by replacing it with a security.clock.FakeClock.
CLOCK: Clock = utcnow


def _now() -> datetime:
    return CLOCK()


class StartupError(RuntimeError):
    """The app cannot start safely; ``str()`` is a message for the operator."""


COOKIE_SECURE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    store: ExtractStore
    security: Security
    trusted_proxies: tuple[Network, ...] = ()


@st.cache_resource(show_spinner=False)
def app_context() -> AppContext:
    """The process-wide context; raises StartupError with the fix when it cannot be built."""
    try:
        settings = load_settings()
        settings.secret("cookie_key")  # refuses a sample, empty, short or predictable key
        proxies = parse_trusted_proxies(settings.trusted_proxies)
        if settings.cookie_secure not in COOKIE_SECURE_MODES:
            raise SettingsError(
                f"SPOTLIGHT_COOKIE_SECURE must be one of {', '.join(COOKIE_SECURE_MODES)}, "
                f"got {settings.cookie_secure!r}."
            )
        try:
            check_currency(settings.reporting_currency)
        except ValueError:
            raise SettingsError(
                "SPOTLIGHT_REPORTING_CURRENCY must be an ISO 4217 code of three capital letters "
                f"(e.g. USD, EUR), got {settings.reporting_currency!r}."
            ) from None
        sso_config(settings)  # the sign-in methods and the SSO claim mapping
        store = store_from_settings(settings)
        build_cache.configure(max_rows=int(settings.memory_index_rows))
        security = Security(settings, clock=_now)
        # Demo installs get their accounts; with a warehouse configured they are disabled.
        ensure_demo_accounts(settings, security)
    except (SettingsError, ExtractError, ProxySettingError) as exc:
        raise StartupError(str(exc)) from None
    return AppContext(settings=settings, store=store, security=security, trusted_proxies=proxies)


def data_scope(principal: Principal) -> Scope:
    """The row scope data/ applies for this principal: all creators, or only theirs."""
    scope = principal.scope
    return Scope.everything() if scope.all_creators else Scope.creators(scope.creator_ids)
