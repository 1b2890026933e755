-- The servers the API serves, and what happened to them (the trending list and the daily
-- statistics are computed from the events).
CREATE TABLE servers (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    language    TEXT    NOT NULL,
    stars       INTEGER NOT NULL DEFAULT 0,
    forks       INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT    NOT NULL DEFAULT (datetime('now'))
);

CREATE INDEX servers_by_stars ON servers (stars DESC);

-- kind: 'view', 'star', 'download' or 'update'; day: YYYY-MM-DD (UTC).
CREATE TABLE server_events (
    id        INTEGER PRIMARY KEY,
    server_id INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    kind      TEXT    NOT NULL,
    day       TEXT    NOT NULL
);

CREATE INDEX server_events_by_day ON server_events (day, kind);
CREATE INDEX server_events_by_server ON server_events (server_id, day);
