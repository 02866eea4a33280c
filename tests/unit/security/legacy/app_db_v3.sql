-- Written by tests/unit/security/legacy/make_dumps.py with the sqlite3 AppDB at user_version 3; the TOTP
-- secret of fin is VZDHZO4D4VJUEN2OFOP4VGCU4K7Z3MSA (encrypted under APP_KEY in the users table).
BEGIN TRANSACTION;
CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            raised_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            details TEXT NOT NULL,
            dedupe_key TEXT,
            acknowledged_by TEXT,
            acknowledged_at TEXT
        );
INSERT INTO "alerts" VALUES(1,'2026-03-02T09:01:00.000000Z','sync_failed','critical','nightly sync failed','{}',NULL,'fin','2026-03-02T09:01:00.000000Z');
INSERT INTO "alerts" VALUES(2,'2026-03-02T09:01:00.000000Z','sync_failed','warning','second sync failed','{}',NULL,NULL,NULL);
CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            client TEXT NOT NULL,
            outcome TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        , mac INTEGER NOT NULL DEFAULT 0);
INSERT INTO "audit" VALUES(1,'2026-03-02T09:00:00.000000Z','system','user.add','dana','','ok','{"creator_ids":[],"demo":false,"roles":["analyst"]}','0000000000000000000000000000000000000000000000000000000000000000','56dc96c6ef60f0e2d44906925853254d2ebd3b0d4c4d8c20802a3bd75c03cc90',1);
INSERT INTO "audit" VALUES(2,'2026-03-02T09:00:00.000000Z','system','user.add','fin','','ok','{"creator_ids":[],"demo":false,"roles":["finance"]}','56dc96c6ef60f0e2d44906925853254d2ebd3b0d4c4d8c20802a3bd75c03cc90','9c15c2ef55476c8dc01e48b6a720f03e0f578f8377779156c01c0f6e7496443e',1);
INSERT INTO "audit" VALUES(3,'2026-03-02T09:00:00.000000Z','system','user.add','cora','','ok','{"creator_ids":[1,2],"demo":false,"roles":["creator"]}','9c15c2ef55476c8dc01e48b6a720f03e0f578f8377779156c01c0f6e7496443e','122a0f2a3928f7582d9244d40cc4b2badde114e7c4fed2012e2338ec5303966e',1);
INSERT INTO "audit" VALUES(4,'2026-03-02T09:00:00.000000Z','dana','signin.ok','dana','198.51.100.7','ok','{"roles":["analyst"]}','122a0f2a3928f7582d9244d40cc4b2badde114e7c4fed2012e2338ec5303966e','cf0cddfcd2c9d7bfdbefc047ca47cf1a26ae28b7b69ef3f818ed0350462863a5',1);
INSERT INTO "audit" VALUES(5,'2026-03-02T09:00:00.000000Z','dana','signin.failure','dana','198.51.100.7','failure','{"reason":"wrong password"}','cf0cddfcd2c9d7bfdbefc047ca47cf1a26ae28b7b69ef3f818ed0350462863a5','ace1b0c8e725eed5d7d12b9d4ca29174f1bf71fe4eb1cd3dddfd890b4a49e362',1);
INSERT INTO "audit" VALUES(6,'2026-03-02T09:00:00.000000Z','dana','session.create','session:fdc17b24f0dbca8e','198.51.100.7','ok','{}','ace1b0c8e725eed5d7d12b9d4ca29174f1bf71fe4eb1cd3dddfd890b4a49e362','bd38391bc22f9cc1dc007c55335e29ffaf991084e2196566431cd1537c9a3e07',1);
INSERT INTO "audit" VALUES(7,'2026-03-02T09:00:00.000000Z','fin','signin.ok','fin','198.51.100.7','ok','{"roles":["finance"]}','bd38391bc22f9cc1dc007c55335e29ffaf991084e2196566431cd1537c9a3e07','832c4f82fc8ac2edd5f2c4e8a062f0eb8a4cb828cbe65611b4a4e6492951e87f',1);
INSERT INTO "audit" VALUES(8,'2026-03-02T09:00:00.000000Z','fin','session.create','session:baed30cbb5c87f61','198.51.100.7','ok','{}','832c4f82fc8ac2edd5f2c4e8a062f0eb8a4cb828cbe65611b4a4e6492951e87f','6060895c705c12b060bfff6c40d230892db0f1847f0d34006f9486b6a64abb17',1);
INSERT INTO "audit" VALUES(9,'2026-03-02T09:00:00.000000Z','fin','2fa.enrol_start','fin','198.51.100.7','ok','{}','6060895c705c12b060bfff6c40d230892db0f1847f0d34006f9486b6a64abb17','52cfc3c720df8f38e9ba138a4291f95f9ef4c4550fe437854edb3a8b2a07ca88',1);
INSERT INTO "audit" VALUES(10,'2026-03-02T09:00:00.000000Z','fin','2fa.enrol','fin','198.51.100.7','ok','{"session":"baed30cbb5c87f61"}','52cfc3c720df8f38e9ba138a4291f95f9ef4c4550fe437854edb3a8b2a07ca88','fe3bfae00a94f15ef9bf978da6b60ee76d0f76a7fd753d9b9f7f6cc97a696245',1);
INSERT INTO "audit" VALUES(11,'2026-03-02T09:01:00.000000Z','fin','stepup','fin','198.51.100.7','ok','{}','fe3bfae00a94f15ef9bf978da6b60ee76d0f76a7fd753d9b9f7f6cc97a696245','0411dfc41a9ddede833e9b9edce1fa7890378b850bb75a52f4d29f6865b181e3',1);
INSERT INTO "audit" VALUES(12,'2026-03-02T09:01:00.000000Z','system','alert.raise','alert:1','','ok','{"kind":"sync_failed","message":"nightly sync failed","severity":"critical"}','0411dfc41a9ddede833e9b9edce1fa7890378b850bb75a52f4d29f6865b181e3','15c4ca302dd8cb8a289de621023534c5ed7f73792949e92edc6fad8943a29b2e',1);
INSERT INTO "audit" VALUES(13,'2026-03-02T09:01:00.000000Z','fin','alert.ack','alert:1','','ok','{}','15c4ca302dd8cb8a289de621023534c5ed7f73792949e92edc6fad8943a29b2e','54619d38ea859c70b157f2e8aa121484a8e4b228e8e6a46f60740c936a3d5386',1);
INSERT INTO "audit" VALUES(14,'2026-03-02T09:01:00.000000Z','system','alert.raise','alert:2','','ok','{"kind":"sync_failed","message":"second sync failed","severity":"warning"}','54619d38ea859c70b157f2e8aa121484a8e4b228e8e6a46f60740c936a3d5386','bb91d52509cf76709b66e9a0a8478b163d233902bc80e6a891f93b3b2370663a',1);
INSERT INTO "audit" VALUES(15,'2026-03-02T09:01:00.000000Z','dana','signout','session:fdc17b24f0dbca8e','198.51.100.7','ok','{"reason":"sign-out","username":"dana"}','bb91d52509cf76709b66e9a0a8478b163d233902bc80e6a891f93b3b2370663a','337093928d4c97798c39ef7036311e4edb6a0553245bc2816b9035468c5084f2',1);
CREATE TABLE known_clients (
            username TEXT NOT NULL,
            client_id TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            PRIMARY KEY (username, client_id)
        );
INSERT INTO "known_clients" VALUES('dana','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "known_clients" VALUES('fin','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
CREATE TABLE saved_views (
            username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
            name TEXT NOT NULL,
            params TEXT NOT NULL,             -- JSON object of URL filter parameters
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (username, name)
        );
INSERT INTO "saved_views" VALUES('dana','My view','{"preset": "last_7_days"}','2026-03-02T09:01:00+00:00','2026-03-02T09:01:00+00:00');
CREATE TABLE sessions (
            id TEXT PRIMARY KEY,              -- public id, safe to show and log
            token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the bearer token; the token is never stored
            username TEXT NOT NULL REFERENCES users(username),
            client_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            mfa_verified_at TEXT,
            step_up_at TEXT,
            revoked_at TEXT,
            revoke_reason TEXT
        , step_up_audit_id INTEGER);
INSERT INTO "sessions" VALUES('fdc17b24f0dbca8e','379822121e8fddfdd01b8f93c0d1b37a157342766d7cda195a8b6639d1dd33af','dana','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z',NULL,NULL,'2026-03-02T09:01:00.000000Z','sign-out',NULL);
INSERT INTO "sessions" VALUES('baed30cbb5c87f61','48b2b3087fda62e11b4fb3b9a5e3c152abcdc33c007cf366ee64667f70d9c4d7','fin','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:01:00.000000Z','2026-03-02T09:00:00.000000Z','2026-03-02T09:01:00.000000Z',NULL,NULL,11);
CREATE TABLE throttles (
            kind TEXT NOT NULL,               -- signin_user | signin_client | totp
            key TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            window_start TEXT,
            locked_until TEXT,
            PRIMARY KEY (kind, key)
        );
INSERT INTO "throttles" VALUES('signin_user','dana',1,'2026-03-02T09:00:00.000000Z',NULL);
INSERT INTO "throttles" VALUES('signin_client','198.51.100.7',1,'2026-03-02T09:00:00.000000Z',NULL);
INSERT INTO "throttles" VALUES('signin_user','fin',0,NULL,NULL);
INSERT INTO "throttles" VALUES('totp','fin',0,NULL,NULL);
INSERT INTO "throttles" VALUES('reauth_session','baed30cbb5c87f61',0,NULL,NULL);
CREATE TABLE trusted_devices (
            id TEXT PRIMARY KEY,              -- public id, used as the device's throttle key
            token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the device cookie's token
            username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL,
            revoked_at TEXT
        );
INSERT INTO "trusted_devices" VALUES('device-09d5c712dc5cbdc9','5cc1781a4e8744c1ba22a8c973ee15afc307527efa39c8681197f1c8b7c540b1','dana','2026-03-02T09:01:00.000000Z','2026-03-02T09:01:00.000000Z',NULL);
CREATE TABLE used_totp (
            username TEXT NOT NULL,
            timestep INTEGER NOT NULL,
            used_at TEXT NOT NULL,
            PRIMARY KEY (username, timestep)
        );
INSERT INTO "used_totp" VALUES('fin',59081400,'2026-03-02T09:00:00.000000Z');
INSERT INTO "used_totp" VALUES('fin',59081402,'2026-03-02T09:01:00.000000Z');
CREATE TABLE users (
            username TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            roles TEXT NOT NULL,              -- JSON list of role names
            creator_ids TEXT NOT NULL DEFAULT '[]',  -- JSON list of ints (external roles' scope)
            disabled INTEGER NOT NULL DEFAULT 0,
            is_demo INTEGER NOT NULL DEFAULT 0,
            totp_secret_enc TEXT,             -- AES-GCM under the app key, never plaintext
            totp_enrolled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
INSERT INTO "users" VALUES('dana','Dana Scully','$2b$04$Gd6niwqi.vXKl8Ry5YsWjumQUxZlkdrjxaRYpegBcs.1KVu6aFFiG','["analyst"]','[]',0,0,NULL,0,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "users" VALUES('fin','fin','$2b$04$Q7GGPXNm7P21vpG.Sf6m7OgyxjPZPJWTQLohMRcxioYkUG6fk8ZIq','["finance"]','[]',0,0,'v1:IU9ssFKibCqsBxnGKGCYJ5/6xuVBEQl1sxjwO85vt1oS6zvrw6BHoxKEKGgVw/NxgefPF/T13YW5g/H+',1,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "users" VALUES('cora','cora','$2b$04$BS1NkXGRWbMmFxzX805PJeJROhoEr2467vPveN6cApT2WxRhqsfQ.','["creator"]','[1, 2]',0,0,NULL,0,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
CREATE INDEX sessions_user ON sessions(username, revoked_at);
CREATE INDEX audit_action_ts ON audit(action, ts);
CREATE INDEX audit_actor_ts ON audit(actor, ts);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX alerts_open ON alerts(acknowledged_at, raised_at);
CREATE INDEX trusted_devices_user ON trusted_devices(username, revoked_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('audit',15);
INSERT INTO "sqlite_sequence" VALUES('alerts',2);
COMMIT;
PRAGMA user_version = 3;
