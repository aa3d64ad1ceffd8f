"""The drawing's bookkeeping (dashboard.drawing): the browser's shapes made into items per frame, the items into
the engine's prompts, and an eraser's pixels. The model and the browser are in tests/test_pages_draw.py."""

from __future__ import annotations

import numpy as np

from dashboard import drawing

BOX = {"type": "rect", "x0": 10.2, "y0": 5.0, "x1": 30.0, "y1": 20.0}
LINE = {"type": "path", "path": "M12,8L20,8L20.4,14"}  # as plotly's drawopenpath gives a freehand line
OUTLINE = {"type": "path", "path": "M10,5L30,5L30,20Z"}


def drawn(shapes, drawing_=(), **kwargs):
    return drawing.updated(list(drawing_), {"shapes": shapes}, **kwargs)


def test_a_freehand_line_is_a_stroke_of_the_tool_on_its_frame():
    items = drawn([LINE], current=2, frame=3, tool="erase", brush=7)
    assert [(i["kind"], i["object"], i["frame"], i["positive"], i["radius"]) for i in items] == [
        ("stroke", 2, 3, False, 3)
    ]
    painted = drawn([LINE], current=1, tool="paint")[0]
    assert painted["positive"] and painted["radius"] == drawing.BRUSH_WIDTH // 2
    assert drawn([OUTLINE], current=1, tool="paint")[0]["kind"] == "path"  # closed: an outline, whatever the tool


def test_each_frame_keeps_its_own_items():
    on_0 = drawn([BOX], current=1, frame=0)
    both = drawn([LINE], on_0, current=2, frame=4, tool="paint")  # the figure of frame 4 shows only its shapes
    assert [(i["kind"], i["frame"]) for i in both] == [("box", 0), ("stroke", 4)]
    assert drawing.frames_of(both) == [0, 4]
    # A stroke moved in the browser stays the stroke it was (paint or erase, its width).
    moved = {**drawing._shape(both[1], 1.0), "path": "M13,9L21,9"}
    again = drawn([moved], both, current=1, frame=4, tool="erase")
    assert again[0] == on_0[0] and again[1]["positive"] and again[1]["path"] == "M13,9L21,9"
    # Erased in the browser: gone from its frame only.
    assert drawn([], both, current=1, frame=4) == on_0


def test_prompts_of_one_frame_with_strokes_cut_at_the_edge():
    items = drawn([BOX], current=1, frame=2) + drawn([{"type": "path", "path": "M90,10L100,10L120,12"}],
                                                     current=1, frame=2, tool="paint")  # fmt: skip
    items[1]["key"] = 2
    given = drawing.prompts(items, 96, 64, 2)
    assert [(b.x0, b.y0, b.x1, b.y1, b.frame) for b in given.boxes] == [(10, 5, 30, 20, 2)]
    assert [(s.points, s.frame, s.positive) for s in given.strokes] == [(((90, 10), (95, 10)), 2, True)]
    assert given.problems == [] and drawing.prompts(items, 96, 64, 0) == ([], [], [], [])


def test_bad_strokes_are_problems_left_out():
    off = drawn([{"type": "path", "path": "M200,10L220,10"}], current=1, frame=0, tool="paint")
    empty = [{**off[0], "key": 2, "path": "M"}]
    given = drawing.prompts(off + empty, 96, 64, 0)
    assert given.strokes == []
    assert given.problems == [
        "The paint stroke for object 1 lies outside the frame: draw it on the picture.",
        "The paint stroke for object 1 has no points: draw it on the picture.",
    ]


def test_an_eraser_takes_its_object_s_pixels_under_it_away():
    from segmentation.prompts import Stroke

    base = np.zeros((64, 96), np.uint8)
    base[10:30, 10:40], base[10:30, 50:80] = 1, 2
    across = Stroke(((5, 20), (90, 20)), object_id=1, positive=False, radius=2)
    # Nothing gives object 1 on this frame but the run's own mask: the eraser is no prompt for the model.
    assert drawing.for_the_model([], [across]) == []
    labels = drawing.labels_of(np.zeros((64, 96, 3), np.uint8), [], [], base, strokes=[across])
    assert not (labels[18:23, 10:40] == 1).any() and (labels[10:17, 10:40] == 1).all()
    assert np.array_equal(labels == 2, base == 2)  # object 2 is not object 1


def test_an_object_is_drawn_only_by_items_that_give_the_model_something():
    flat = drawn([{**BOX, "y1": BOX["y0"]}], current=1, frame=0)  # a zero-area box: a problem, left out
    off = drawn([{"type": "path", "path": "M200,10L220,10"}], current=2, frame=0, tool="paint")
    good = drawn([BOX], current=3, frame=0)
    items = [{**item, "key": key} for key, item in enumerate(flat + off + good)]
    assert [item["object"] for item in drawing.usable(items, 96, 64)] == [3]
    assert drawing.prompts(items, 96, 64, 0).problems  # each still says why it was left out
    text = str(drawing.drawn_objects(drawing.usable(items[:2], 96, 64), "p").children[0].children)
    assert text == "0 objects drawn"
