"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from srcflask.registry import model_tasks


def run_model_tasks(app) -> int:
    """Run the model actions handed to the (manual) runner, as a worker would; return how many
    ran."""
    runner = app.extensions["srcflask.jobs"]
    ran = 0
    with app.app_context():
        while runner.tasks:
            _, task_id = runner.tasks.pop(0)
            ran += model_tasks.run(task_id)
    return ran


def task_box(page: str, box_id: str) -> str:
    """The markup of the Models page's task box `box_id`, up to the next task box."""
    start = page.index(f'id="{box_id}"')
    following = page.find("data-task-box=", page.index("data-task-box=", start) + 1)
    return page[start : following if following != -1 else len(page)]


def claims_die(limit: int) -> list[int]:
    """A worker claims up to `limit` machine texts and dies holding them (its process is
    gone); they are found and queued again. Returns their ids. In an app context."""
    import socket

    from srcflask.extensions import db
    from srcflask.jobs import work
    from srcflask.models import MachineText

    claimed = work.claim(work.MACHINE_TEXTS, [], limit=limit)
    db.session.execute(
        MachineText.__table__.update()
        .where(MachineText.id.in_(claimed))
        .values(claimed_by=f"{socket.gethostname()}:999999999:dead")
    )
    db.session.commit()
    assert sorted(work.recover_stale(work.MACHINE_TEXTS)) == sorted(claimed)
    return claimed
