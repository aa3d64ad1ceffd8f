"""Page registry. Each page module has PATH, NAME, layout(**query) and register_callbacks(app)."""

from __future__ import annotations

import dash

from dashboard.pages import compare, gallery, home, player, run, trajectory, upload

PAGES = (home, upload, run, player, trajectory, gallery, compare)


def register(app: dash.Dash) -> None:
    for order, page in enumerate(PAGES):
        dash.register_page(page.__name__, path=page.PATH, name=page.NAME, order=order, layout=page.layout,
                           title=f"{page.NAME} · STCNN")  # fmt: skip
        page.register_callbacks(app)
