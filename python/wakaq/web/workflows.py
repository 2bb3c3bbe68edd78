"""The dashboard's Workflows page (and `wakaq-info`'s `workflows`): recent workflows, one workflow's steps.

Where they come from: the start script adds each workflow's id to the index of recent workflows
(`Keys.workflows_recent`, a zset scored by start time, kept to the newest 1,000 by the script and expiring with the
longest-lived workflow in it), so the page never SCANs. Every read is bounded:
- the list: one ZREVRANGE of the whole index (at most its bound) and one pipelined HGET of each workflow's status
  (ids whose workflow expired are skipped), then the fields of one page of at most `MAX_LIMIT` workflows;
- one workflow: its node kinds (HMGET in chunks, at most `workflow.rs` MAX_NODES fields), then one page of at most
  `MAX_MEMBERS` steps with their result records; the states of all its steps are counted only when it has at most
  `COUNT_LIMIT` of them.
Every task value (names, errors, results) reaches the page as a bounded string: `records.short_repr` of a decoded
result, decoded text cut to a length; the page shows them with textContent only.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from wakaq.ids import is_workflow_id
from wakaq.results import PENDING
from wakaq.web.records import _text, short_repr
from wakaq.workflow import WAITING, recent_statuses

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

DEFAULT_LIMIT = 50
MAX_LIMIT = 200  # workflows per page of the list
DEFAULT_MEMBERS = 100
MAX_MEMBERS = 500  # steps per page of one workflow
COUNT_LIMIT = 5000  # a workflow with more steps has no per-state counts (each needs a read of its record)
KIND_CHUNK = 1000  # node kinds read per HMGET
NAMES_SHOWN = 12  # nodes whose task names describe a workflow in the list
VALUE_LIMIT = 300  # characters of a step's result shown in the list of steps
RESULT_LIMIT = 4000  # characters of the workflow's own result
ERROR_LIMIT = 2000
MAX_NODES = 100_000  # the most nodes a workflow has (rust/src/broker/workflow.rs MAX_NODES)
#: the workflow hash fields the list shows
SUMMARY_FIELDS = ("status", "at", "nodes", "error_type", "error", "failed_node")


def _str(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="replace")


def _float(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _int(raw: bytes | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _page(params: dict[str, str], default: int, most: int) -> tuple[int, int]:
    """(offset, limit) asked for, clamped: 0 <= offset, 1 <= limit <= most."""

    def number(name: str, fallback: int) -> int:
        try:
            return int(params.get(name) or fallback)
        except ValueError:
            return fallback

    return max(0, number("offset", 0)), min(most, max(1, number("limit", default)))


def _value(raw: bytes | None, limit: int) -> str | None:
    """A packed result as a bounded repr; undecodable bytes say so (never an error for the page)."""
    if raw is None:
        return None
    from wakaq._wakaq import unpackb

    try:
        return short_repr(unpackb(raw), limit)
    except Exception as e:  # NOTE: a value the codec refuses is shown as such
        return f"<undecodable result: {type(e).__name__}>"


# ---- the index ----------------------------------------------------------------------------------------------------


def _statuses(app: WakaQ, r: redis.Redis) -> list[tuple[str, float, str]]:
    return recent_statuses(app, r)


def recent(app: WakaQ, r: redis.Redis, params: dict[str, str]) -> dict[str, Any]:
    """A page of recent workflows, newest first (`status`: only those with it), with the counts by status."""
    everything = _statuses(app, r)
    wanted = params.get("status") or None
    chosen = [w for w in everything if wanted is None or w[2] == wanted]
    offset, limit = _page(params, DEFAULT_LIMIT, MAX_LIMIT)
    page = chosen[offset : offset + limit]
    pipe: Any = r.pipeline(transaction=False)
    names = [f"w{i}" for i in range(NAMES_SHOWN)]
    for wf_id, _, _ in page:
        pipe.hmget(app.keys.workflow(wf_id), [*SUMMARY_FIELDS, *names])
    items = []
    for (wf_id, started, _), raw in zip(page, pipe.execute() if page else [], strict=True):
        status, at, nodes, error_type, error, failed_node = raw[: len(SUMMARY_FIELDS)]
        if status is None:
            continue  # expired between the two reads
        tasks = list(dict.fromkeys(_text(n, 200) or "" for n in raw[len(SUMMARY_FIELDS) :] if n is not None))
        items.append(
            {
                "id": wf_id,
                "status": _str(status),
                "started": _float(at) or started,
                "nodes": _int(nodes),
                "tasks": tasks,
                "more_tasks": _int(nodes) > NAMES_SHOWN,
                "error_type": _text(error_type, 200),
                "error": _text(error, ERROR_LIMIT),
                "failed_node": _str(failed_node),
            }
        )
    by_status = Counter(status for _, _, status in everything)
    return {
        "total": len(chosen),
        "offset": offset,
        "limit": limit,
        "status": wanted,
        "counts": {"recent": len(everything), **dict(sorted(by_status.items()))},
        "items": items,
    }


# ---- one workflow -------------------------------------------------------------------------------------------------


class NoWorkflow(LookupError):
    """No workflow with that id (unknown, expired, or not a workflow id)."""


def _kinds(app: WakaQ, r: redis.Redis, wf_key: str, nodes: int) -> list[str]:
    pipe: Any = r.pipeline(transaction=False)
    for start in range(0, nodes, KIND_CHUNK):
        pipe.hmget(wf_key, [f"k{i}" for i in range(start, min(nodes, start + KIND_CHUNK))])
    return [(k or b"").decode(errors="replace") for chunk in (pipe.execute() if nodes else []) for k in chunk]


def _state(record: list[bytes | None]) -> str:
    """A step's state from its result record's status and `wf` link (as `WorkflowHandle.members` reads it)."""
    status, linked = record[0], record[1]
    if status is not None:
        return status.decode(errors="replace")
    return PENDING if linked is not None else WAITING


def detail(app: WakaQ, r: redis.Redis, params: dict[str, str]) -> dict[str, Any]:
    """One workflow: its status and outcome, the counts of its steps by state, and a page of its steps (tree
    order) with each one's task name, state, where it sits (chain step or group member), and its result or error."""
    wf_id = params.get("id", "")
    if not is_workflow_id(wf_id):
        raise NoWorkflow(f"{wf_id[:100]!r} is not a workflow id")
    key = app.keys.workflow(wf_id)
    pipe: Any = r.pipeline(transaction=False)
    pipe.hmget(key, ["status", "at", "nodes", "error_type", "error", "failed_node", "result"])
    pipe.pttl(key)
    (status, at, nodes_raw, error_type, error, failed_node, result), pttl = pipe.execute()
    if status is None:
        raise NoWorkflow(f"no workflow {wf_id} (it expired, or never existed)")
    kinds = _kinds(app, r, key, min(_int(nodes_raw), MAX_NODES))
    steps = [i for i, kind in enumerate(kinds) if kind == "t"]
    offset, limit = _page(params, DEFAULT_MEMBERS, MAX_MEMBERS)
    page = steps[offset : offset + limit]
    members = _members(app, r, wf_id, key, kinds, page)
    return {
        "id": wf_id,
        "status": _str(status),
        "started": _float(at),
        "expires_in": pttl / 1000 if pttl is not None and pttl >= 0 else None,
        "nodes": len(kinds),
        "result": _value(result, RESULT_LIMIT),
        "error_type": _text(error_type, 200),
        "error": _text(error, ERROR_LIMIT),
        "failed_node": _int(failed_node) if failed_node is not None else None,
        "total": len(steps),
        "offset": offset,
        "limit": limit,
        "counts": _count_states(app, r, wf_id, steps) if len(steps) <= COUNT_LIMIT else None,
        "members": members,
    }


def _members(
    app: WakaQ, r: redis.Redis, wf_id: str, key: str, kinds: list[str], page: list[int]
) -> list[dict[str, Any]]:
    if not page:
        return []
    pipe: Any = r.pipeline(transaction=False)
    pipe.hmget(key, [f for i in page for f in (f"w{i}", f"u{i}", f"o{i}")])
    for i in page:
        pipe.hmget(app.keys.result(f"{wf_id}-{i}"), ["status", "wf", "value", "error_type", "error", "at"])
    tree, *records = pipe.execute()
    out = []
    for j, (i, record) in enumerate(zip(page, records, strict=True)):
        name, parent, position = tree[3 * j : 3 * j + 3]
        up = _int(parent) if parent else None
        state = _state(record)
        out.append(
            {
                "node": i,
                "id": f"{wf_id}-{i}",
                "task": _text(name, 500),
                "state": state,
                "parent": up,
                "in": {"c": "chain", "g": "group"}.get(kinds[up], None) if up is not None and up < len(kinds) else None,
                "position": _int(position) if position else None,
                "at": _float(record[5]),
                "result": _value(record[2], VALUE_LIMIT) if state == "done" else None,
                "error_type": _text(record[3], 200),
                "error": _text(record[4], ERROR_LIMIT),
            }
        )
    return out


def _count_states(app: WakaQ, r: redis.Redis, wf_id: str, steps: list[int]) -> dict[str, int]:
    pipe: Any = r.pipeline(transaction=False)
    for i in steps:
        pipe.hmget(app.keys.result(f"{wf_id}-{i}"), ["status", "wf"])
    return dict(Counter(_state(record) for record in (pipe.execute() if steps else [])))
