"""What every part of the security service shares: settings, clock and the app database's stores.

The service is split by concern (sign-in, sessions, second factor, exports) into mixins over this
base; ``security.service.Security`` puts them together behind one small facade.
"""

from __future__ import annotations

from datetime import datetime

from security.alerts import Alerts
from security.audit import AuditLog
from security.clock import Clock
from security.crypto import SecretBox
from security.db import AppDB
from security.users import UserStore
from settings import Settings


class ServiceBase:
    """The attributes the concern mixins read; set by ``Security.__init__``."""

    settings: Settings
    clock: Clock
    db: AppDB
    audit: AuditLog
    alerts: Alerts
    users: UserStore
    _box: SecretBox

    def _now(self, now: datetime | None) -> datetime:
        return now or self.clock()
