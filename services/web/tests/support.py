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
