"""`memory.md`: a namespace as a page people read (a TODO list of its tasks, facts by key,
memories by date, summaries)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ..models import Memory, Namespace, Task
from ..schemas import MemoryStatus, TaskStatus

# The TODO section's parts, in order, and the statuses each lists.
TODO_PARTS = (
    ("In progress", (TaskStatus.IN_PROGRESS,)),
    ("Open", (TaskStatus.PENDING, TaskStatus.FAILED)),
    ("Done", (TaskStatus.COMPLETED, TaskStatus.CANCELLED)),
)


def render_markdown(
    namespace: Namespace,
    rows: list[Memory],
    sources: dict[str, list[str]],
    now: datetime,
    tasks: list[Task] | None = None,
) -> Iterator[str]:
    """The page, a piece at a time; `sources` maps each summary to the ids it was made from."""
    by_id = {m.id: m for m in rows}
    keyed = [m for m in rows if m.key is not None]
    summaries = [m for m in rows if m.kind == "summary"]
    others = [m for m in rows if m.key is None and m.kind != "summary"]
    yield f"# Memory: {namespace.name}\n\n"
    yield (
        f"Namespace `{namespace.id}`, exported {now:%Y-%m-%d %H:%M} UTC: {len(rows)} memories "
        f"({len(keyed)} keyed facts and their history, {len(others)} other memories, "
        f"{len(summaries)} summaries).\n\n"
    )
    if namespace.description:
        yield f"{namespace.description}\n\n"
    yield from _todo(tasks or [])
    yield "## Facts by key\n\n"
    if not keyed:
        yield "_None._\n\n"
    slots: dict[tuple[str, str], list[Memory]] = {}
    for memory in keyed:
        slots.setdefault((memory.key or "", memory.user_id or ""), []).append(memory)
    for (key, user), history in sorted(slots.items()):
        yield f"### `{key}`" + (f" (user {user})" if user else "") + "\n\n"
        for memory in sorted(history, key=lambda m: (m.created_at, m.id), reverse=True):
            state = "current" if memory.status == MemoryStatus.ACTIVE else str(memory.status)
            yield f"- **{state}** ({memory.created_at:%Y-%m-%d}, {memory.kind}): {_text(memory)}\n"
        yield "\n"
    yield "## Memories by date\n\n"
    if not others:
        yield "_None._\n\n"
    day = None
    for memory in others:
        if memory.created_at.date() != day:
            day = memory.created_at.date()
            yield f"\n### {day:%Y-%m-%d}\n\n"
        label = [memory.kind] + ([memory.role] if memory.role else [])
        if memory.thread_id:
            label.append(f"thread {memory.thread_id}")
        if memory.user_id:
            label.append(f"user {memory.user_id}")
        if memory.status != MemoryStatus.ACTIVE:
            label.append(str(memory.status))
        yield f"- {memory.created_at:%H:%M} · {' · '.join(label)}: {_text(memory)}\n"
    yield "\n## Summaries\n\n"
    if not summaries:
        yield "_None._\n"
    for summary in summaries:
        span = ""
        if summary.covers_from and summary.covers_to:
            span = f", {summary.covers_from:%Y-%m-%d %H:%M} to {summary.covers_to:%Y-%m-%d %H:%M}"
        yield f"### Summary `{summary.id}` (level {summary.level}{span})\n\n"
        yield f"{summary.content.strip()}\n\nSources:\n\n"
        for source_id in sorted(sources.get(summary.id, [])):
            source = by_id.get(source_id)
            if source is None:
                yield f"- `{source_id}` (not in this export)\n"
            else:
                yield (
                    f"- `{source_id}` ({source.created_at:%Y-%m-%d %H:%M}, {source.kind}): "
                    f"{_text(source, 120)}\n"
                )
        yield "\n"


def _todo(tasks: list[Task]) -> Iterator[str]:
    """The tasks as a TODO.md: in progress, open (pending by priority, then failed), done."""
    yield "## TODO\n\n"
    if not tasks:
        yield "_None._\n\n"
        return
    for title, statuses in TODO_PARTS:
        wanted = {s.value for s in statuses}
        part = sorted(
            (t for t in tasks if t.status in wanted),
            key=lambda t: (t.status != statuses[0].value, -t.priority, t.created_at, t.id),
        )
        yield f"### {title}\n\n"
        if not part:
            yield "_None._\n\n"
            continue
        for task in part:
            yield f"- {_task_line(task)}\n"
        yield "\n"


def _task_line(task: Task) -> str:
    box = {"completed": "[x]", "cancelled": "[-]"}.get(task.status, "[ ]")
    title = " ".join(task.title.split())
    facts = [f"agent {task.agent_id}"]
    if task.thread_id:
        facts.append(f"thread {task.thread_id}")
    if task.priority:
        facts.append(f"priority {task.priority}")
    if task.status == TaskStatus.IN_PROGRESS and task.started_at is not None:
        facts.append(f"since {task.started_at:%Y-%m-%d %H:%M}")
    elif task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        facts.append(task.status)
    if task.finished_at is not None and task.status == TaskStatus.COMPLETED:
        facts.append(f"done {task.finished_at:%Y-%m-%d %H:%M}")
    line = f"{box} **{title}** ({', '.join(facts)}, `{task.id}`)"
    if task.description:
        line += f": {' '.join(task.description.split())[:200]}"
    return line


def _text(memory: Memory, limit: int | None = None) -> str:
    text = " ".join(memory.content.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
