"""Every operational metric ChaSe exports, defined in one place.

The objects live on prometheus-client's default registry, the library's own idiom: importing
this module registers them and touches no network and no environment. A process exposes the
registry once (``CHASE_METRICS_PORT`` for any process, see
``chase.serve``), so in ``chase serve`` one scrape shows all three services.

Labels are low-cardinality on purpose: outcomes, frame types, error codes, queue names. Never a
user id, a user name, a session id or a token: one series per user would grow without bound and
put personal data into the monitoring system.

Counters only count what happened in this process since it started; Prometheus' ``rate()``
and ``increase()`` make sense of restarts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- gateway ----------------------------------------------------------------------------------

GATEWAY_CONNECTIONS_OPEN = Gauge(
    "chase_gateway_connections_open", "Authenticated WebSocket connections open now"
)
#: ``outcome``: accepted, refused_token (missing, invalid, expired or revoked; closed 4401),
#: auth_unavailable (auth service not answering; 1013), bus_unavailable (bindings failed; 1013),
#: too_many (the user is at max_connections_per_user; 4429).
GATEWAY_CONNECTIONS = Counter(
    "chase_gateway_connections", "WebSocket connections opened, by how authentication ended", ["outcome"]
)
CONNECTION_OUTCOMES = (
    "accepted", "refused_token", "auth_unavailable", "bus_unavailable", "too_many", "gateway_full",
)
#: ``type``: send, history, sync, ping, or refused (answered with an error frame or a close).
GATEWAY_FRAMES_RECEIVED = Counter(
    "chase_gateway_frames_received", "Client frames received, by what they turned out to be", ["type"]
)
FRAME_TYPES = ("send", "history", "sync", "ping", "refused")
#: ``code``: the ErrorCode of the frame (services/gateway/errors.py).
GATEWAY_ERRORS_SENT = Counter("chase_gateway_errors_sent", "Error frames sent to clients, by code", ["code"])
GATEWAY_MESSAGES_FANNED_OUT = Counter(
    "chase_gateway_messages_fanned_out", "Message frames queued for local connections (one per receiving connection)"
)
GATEWAY_SLOW_CLIENTS_DROPPED = Counter(
    "chase_gateway_slow_clients_dropped", "Connections closed with 4008 because their outbox overflowed"
)
GATEWAY_PUBLISH_FAILURES = Counter(
    "chase_gateway_publish_failures", "Sends refused because the broker did not confirm the publish"
)
GATEWAY_SUBMISSION_GROUP = Histogram(
    "chase_gateway_submission_group_sends",
    "Sends published together as one event (those of all connections in one turn of the event loop)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200),
)

# --- bus (every process on RabbitMQ) ----------------------------------------------------------

BUS_PUBLISHER_RENEWALS = Counter(
    "chase_bus_publisher_renewals",
    "Publishing channels replaced because a publish was nacked or went unconfirmed while the broker connection was up",
)

# --- persistence ------------------------------------------------------------------------------

PERSISTENCE_BATCHES = Counter("chase_persistence_batches", "Batches committed (one transaction each)")
PERSISTENCE_BATCH_MESSAGES = Histogram(
    "chase_persistence_batch_messages",
    "Submitted messages per committed batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
PERSISTENCE_STORE_SECONDS = Histogram(
    "chase_persistence_store_batch_seconds",
    "Time to store one batch that committed (one bulk INSERT and its COMMIT)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PERSISTENCE_STORED = Counter("chase_persistence_messages_stored", "Messages stored for the first time")
PERSISTENCE_DUPLICATES = Counter(
    "chase_persistence_messages_duplicate", "Submissions that were already stored (resends, redeliveries)"
)
#: ``code``: the RejectCode (services/persistence/errors.py).
PERSISTENCE_REJECTED = Counter(
    "chase_persistence_messages_rejected", "Submissions refused for good, by code", ["code"]
)
PERSISTENCE_STORE_OUTAGES = Counter(
    "chase_persistence_store_outages", "Times the database became unreachable (announced to the gateways)"
)

# --- auth -------------------------------------------------------------------------------------

AUTH_REGISTRATIONS = Counter("chase_auth_registrations", "Users registered")
#: ``outcome``: ok, invalid (unknown name or wrong password), throttled (429).
AUTH_LOGINS = Counter("chase_auth_logins", "Login attempts, by outcome", ["outcome"])
LOGIN_OUTCOMES = ("ok", "invalid", "throttled")
AUTH_LOGOUTS = Counter("chase_auth_logouts", "Sessions ended by logout")
#: ``outcome``: ok, invalid (unknown, expired or revoked). Gateway connections and API calls alike.
AUTH_TOKEN_CHECKS = Counter("chase_auth_token_checks", "Bearer tokens checked, by outcome", ["outcome"])
TOKEN_OUTCOMES = ("ok", "invalid")

# --- bus --------------------------------------------------------------------------------------

#: ``queue``: the consumer's queue name without the namespace (e.g. persistence.submitted).
BUS_DEAD_LETTERED = Counter(
    "chase_bus_dead_lettered", "Events rejected to the dead-letter exchange after max attempts", ["queue"]
)

# Every fixed label value exists from the start at 0, so a first increment is a visible change
# (rate() needs two samples) and dashboards show zero rather than "no data".
for _labels, _counter in (
    (CONNECTION_OUTCOMES, GATEWAY_CONNECTIONS),
    (FRAME_TYPES, GATEWAY_FRAMES_RECEIVED),
    (LOGIN_OUTCOMES, AUTH_LOGINS),
    (TOKEN_OUTCOMES, AUTH_TOKEN_CHECKS),
):
    for _value in _labels:
        _counter.labels(_value)
