"""The open-file limit: every connection is a file descriptor, and the usual soft limit (1,024)
is far below what a gateway or the auth server should hold. Raised once at start."""

from __future__ import annotations

from chase.logging import get_logger

#: What a server process asks for; the hard limit may allow less.
WANTED_OPEN_FILES = 65_536
#: Below this a server warns: a few thousand clients would exhaust it.
ENOUGH_OPEN_FILES = 8_192


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> tuple[int, str | None]:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``wanted`` (never above the hard limit).

    Returns the limit now in force and, when it is still below ``wanted``, a sentence for the
    log saying how to raise it. Never raises: a platform without it keeps its limit.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return 0, None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < min(wanted, ENOUGH_OPEN_FILES):
        return soft, (
            f"the open-file limit is {soft} (hard limit {hard}): at most about {soft} connections can be "
            f"served at once; raise it (ulimit -n {wanted}, or LimitNOFILE= in a systemd unit)"
        )
    return soft, None


def ensure_open_file_limit() -> int:
    """Raise the limit at a server's start and say in the log what it is (a warning, with the
    fix, when it stays low). Returns the limit in force."""
    limit, advice = raise_open_file_limit()
    log = get_logger("chase")
    if advice is not None:
        log.warning("open-file limit low", limit=limit, advice=advice)
    else:
        log.info("open-file limit", limit=limit)
    return limit
