-- Written by tests/unit/security/legacy/make_dumps.py with the sqlite3 AppDB at user_version 1; the TOTP
-- secret of fin is GE7AU2ZORFRPIBAC4Y2P6B7LWPQYDN6H (encrypted under APP_KEY in the users table).
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
        );
INSERT INTO "audit" VALUES(1,'2026-03-02T09:00:00.000000Z','system','user.add','dana','','ok','{"creator_ids":[],"demo":false,"roles":["analyst"]}','0000000000000000000000000000000000000000000000000000000000000000','5dd974036c0c65ce87427e68193956920a5650c8b01d86894f42be250df2b0d5');
INSERT INTO "audit" VALUES(2,'2026-03-02T09:00:00.000000Z','system','user.add','fin','','ok','{"creator_ids":[],"demo":false,"roles":["finance"]}','5dd974036c0c65ce87427e68193956920a5650c8b01d86894f42be250df2b0d5','bcca0a854084b4035b06638ac700f73021451f2e7c69f1f91557406556a1cd76');
INSERT INTO "audit" VALUES(3,'2026-03-02T09:00:00.000000Z','system','user.add','cora','','ok','{"creator_ids":[1,2],"demo":false,"roles":["creator"]}','bcca0a854084b4035b06638ac700f73021451f2e7c69f1f91557406556a1cd76','f4a44e1b19c29d2dbded6c50d32bd4b47c4951c90f7f0ccf98a93c6359c631f9');
INSERT INTO "audit" VALUES(4,'2026-03-02T09:00:00.000000Z','dana','signin.ok','dana','198.51.100.7','ok','{"roles":["analyst"]}','f4a44e1b19c29d2dbded6c50d32bd4b47c4951c90f7f0ccf98a93c6359c631f9','f35c605c246b060b434aecb8b7f1e71d6f36a809ead1bf3c3c1ab8bd235f231f');
INSERT INTO "audit" VALUES(5,'2026-03-02T09:00:00.000000Z','dana','signin.failure','dana','198.51.100.7','failure','{"reason":"wrong password"}','f35c605c246b060b434aecb8b7f1e71d6f36a809ead1bf3c3c1ab8bd235f231f','6cfe8ac3cf7f4f203ef72cab0171e3a52646cd3e6bdbdfd387da6557a2adefc5');
INSERT INTO "audit" VALUES(6,'2026-03-02T09:00:00.000000Z','dana','session.create','session:b1005e97cf01fa90','198.51.100.7','ok','{}','6cfe8ac3cf7f4f203ef72cab0171e3a52646cd3e6bdbdfd387da6557a2adefc5','c7ef109d94593dc2ed67fa4973a70095229e9c850049a0cdaaa6bf3a61fb9e60');
INSERT INTO "audit" VALUES(7,'2026-03-02T09:00:00.000000Z','fin','signin.ok','fin','198.51.100.7','ok','{"roles":["finance"]}','c7ef109d94593dc2ed67fa4973a70095229e9c850049a0cdaaa6bf3a61fb9e60','fca608dfe55656e4c0690a03ce44016122bdd2e1b1b40aac436fdd6624c27514');
INSERT INTO "audit" VALUES(8,'2026-03-02T09:00:00.000000Z','fin','session.create','session:d67e956fb46b1979','198.51.100.7','ok','{}','fca608dfe55656e4c0690a03ce44016122bdd2e1b1b40aac436fdd6624c27514','3767f6d596de9dbb86e4fd3cc6f4579cb0bba7e06a138d99c8fe1eef3bfc377e');
INSERT INTO "audit" VALUES(9,'2026-03-02T09:00:00.000000Z','fin','2fa.enrol_start','fin','198.51.100.7','ok','{}','3767f6d596de9dbb86e4fd3cc6f4579cb0bba7e06a138d99c8fe1eef3bfc377e','d676dac4b8ffdb3471b27e7ff38997de4fe9360bb6930a42a06b7905c619b15e');
INSERT INTO "audit" VALUES(10,'2026-03-02T09:00:00.000000Z','fin','2fa.enrol','fin','198.51.100.7','ok','{"session":"d67e956fb46b1979"}','d676dac4b8ffdb3471b27e7ff38997de4fe9360bb6930a42a06b7905c619b15e','cba849dbd6b2c9fc0693d5af1dd290f40ff1c53c5597e3d36460ff983c961f3a');
INSERT INTO "audit" VALUES(11,'2026-03-02T09:01:00.000000Z','fin','stepup','fin','198.51.100.7','ok','{}','cba849dbd6b2c9fc0693d5af1dd290f40ff1c53c5597e3d36460ff983c961f3a','8502ce9cabe4f00bbea5d1e6bdee83dcc11761b53828bcc141e0e2fd40104d70');
INSERT INTO "audit" VALUES(12,'2026-03-02T09:01:00.000000Z','system','alert.raise','alert:1','','ok','{"kind":"sync_failed","message":"nightly sync failed","severity":"critical"}','8502ce9cabe4f00bbea5d1e6bdee83dcc11761b53828bcc141e0e2fd40104d70','3222b002c0a1886495a5f664604a3b37e313afb2e341f46ae5fdb256dc731ff8');
INSERT INTO "audit" VALUES(13,'2026-03-02T09:01:00.000000Z','fin','alert.ack','alert:1','','ok','{}','3222b002c0a1886495a5f664604a3b37e313afb2e341f46ae5fdb256dc731ff8','4f46388e938472c8790de5807fc49d73045addd6f656a859616c69d4641213d1');
INSERT INTO "audit" VALUES(14,'2026-03-02T09:01:00.000000Z','system','alert.raise','alert:2','','ok','{"kind":"sync_failed","message":"second sync failed","severity":"warning"}','4f46388e938472c8790de5807fc49d73045addd6f656a859616c69d4641213d1','b719326956346acc30d69e9293f901057eab4a3ea7a7fcf1e54aee98bd39a022');
INSERT INTO "audit" VALUES(15,'2026-03-02T09:01:00.000000Z','dana','signout','session:b1005e97cf01fa90','198.51.100.7','ok','{"reason":"sign-out","username":"dana"}','b719326956346acc30d69e9293f901057eab4a3ea7a7fcf1e54aee98bd39a022','e3678a763138988c4546ceb8bcae0a0b8b2aa6a35dacf3bf63c2764725720a85');
CREATE TABLE known_clients (
            username TEXT NOT NULL,
            client_id TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            PRIMARY KEY (username, client_id)
        );
INSERT INTO "known_clients" VALUES('dana','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "known_clients" VALUES('fin','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
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
        );
INSERT INTO "sessions" VALUES('b1005e97cf01fa90','32bba4ce0eaa53babe9a9e5e6d37c23e89771c0b49730d250e4a95b9485bf89a','dana','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z',NULL,NULL,'2026-03-02T09:01:00.000000Z','sign-out');
INSERT INTO "sessions" VALUES('d67e956fb46b1979','88c26bbac52cc73bd9b5bac5fbeda9cddd14d213f26c8459190c7188258abbb0','fin','198.51.100.7','2026-03-02T09:00:00.000000Z','2026-03-02T09:01:00.000000Z','2026-03-02T09:00:00.000000Z','2026-03-02T09:01:00.000000Z',NULL,NULL);
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
INSERT INTO "users" VALUES('dana','Dana Scully','$2b$04$ogeKYVVvEp.vJNjPFuC5wuVzgT.6f2yWCfwJIEWrRvULT7wcRPlAC','["analyst"]','[]',0,0,NULL,0,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "users" VALUES('fin','fin','$2b$04$uD0nGU00OUkVSNb4f2yH.e9VLjgRwSkKId9ulhq/QUR.Gqvpo66Z.','["finance"]','[]',0,0,'v1:IRqhgRpr5rQA1LIflZXMp7i74u+g1MqcD2hTkQ72ftd/Knb4+tJrxfF3dSGktOt0T2yamLvsmoRL4S7W',1,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
INSERT INTO "users" VALUES('cora','cora','$2b$04$Gb.k7MPcz0kjZ7XHtzpvb.Zh.W5v462ANxnKpKQvgHHmAQupCcV6a','["creator"]','[1, 2]',0,0,NULL,0,'2026-03-02T09:00:00.000000Z','2026-03-02T09:00:00.000000Z');
CREATE INDEX sessions_user ON sessions(username, revoked_at);
CREATE INDEX audit_action_ts ON audit(action, ts);
CREATE INDEX audit_actor_ts ON audit(actor, ts);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE INDEX alerts_open ON alerts(acknowledged_at, raised_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('audit',15);
INSERT INTO "sqlite_sequence" VALUES('alerts',2);
COMMIT;
PRAGMA user_version = 1;
