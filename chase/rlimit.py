"""The open-file limit: every connection is a file descriptor, and the usual soft limit (1,024)
is far below what a gateway or the auth server should hold. Raised once at start, to the hard
limit: the soft limit is only a default a process may lift itself, and a server that holds
connections has no reason to stop below what the system allows it."""

from __future__ import annotations

from dataclasses import dataclass

from chase.logging import get_logger

#: What a server asks for when the hard limit is unlimited (then the kernel's own cap applies).
WANTED_OPEN_FILES = 65_536
#: Below this a server warns: a few thousand clients would exhaust it.
ENOUGH_OPEN_FILES = 8_192
#: Files a server holds besides its clients' sockets: broker and database connections, the
#: auth client's pool, the listening sockets, logs, the Python runtime's own.
SPARE_OPEN_FILES = 256


@dataclass(frozen=True)
class OpenFileLimit:
    #: The soft limit now in force (0: the platform has none to ask).
    soft: int
    hard: int
    #: When the limit stays below what was needed: a sentence for the log saying how to raise it.
    advice: str | None


def raise_open_file_limit(needed: int = ENOUGH_OPEN_FILES) -> OpenFileLimit:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (to :data:`WANTED_OPEN_FILES`, or
    ``needed`` if more, when the hard limit is unlimited); never lowers it.

    ``advice`` says how to raise the hard limit when the result is below ``needed``. Never
    raises: a platform without the call keeps its limit.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return OpenFileLimit(0, 0, None)
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(WANTED_OPEN_FILES, needed) if hard == infinity else hard
    if soft != infinity and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # e.g. above the kernel's fs.nr_open: keep what we have
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    advice = None
    if soft != infinity and soft < needed:
        advice = (
            f"the open-file limit is {soft} (hard limit {hard if hard != infinity else 'unlimited'}), below the "
            f"{needed} needed: connections past about {max(0, soft - SPARE_OPEN_FILES)} will fail; raise the hard "
            f"limit (ulimit -Hn {needed}, LimitNOFILE={needed} in a systemd unit, or ulimits.nofile in compose)"
        )
    return OpenFileLimit(soft if soft != infinity else -1, hard if hard != infinity else -1, advice)


def ensure_open_file_limit(connections: int | None = None) -> OpenFileLimit:
    """Raise the limit at a server's start and say in the log what it is: a warning, with the
    fix, when it is below what ``connections`` client connections (and the server's own files)
    need, or below :data:`ENOUGH_OPEN_FILES` when the caller does not say."""
    needed = connections + SPARE_OPEN_FILES if connections is not None else ENOUGH_OPEN_FILES
    limit = raise_open_file_limit(needed)
    log = get_logger("chase")
    if limit.advice is not None:
        log.warning("open-file limit too low", limit=limit.soft, hard_limit=limit.hard, needed=needed,
                    advice=limit.advice)
    else:
        log.info("open-file limit", limit=limit.soft, hard_limit=limit.hard, needed=needed)
    return limit
