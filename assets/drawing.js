// The drawing (dashboard/drawing.py): only the graph's relayout events that draw, erase or move a shape reach
// the server. The others (autosize when plotly first draws, a tool picked on the mode bar) would call the
// drawing's callback too, and Dash drops a call in flight when the same callback is called again: the frame
// the first call was drawing would never arrive.
(function () {
  "use strict";
  const EDIT = /^shapes\[\d+\]\.(x0|x1|y0|y1|path)$/;  // the edits drawing.py's _EDIT reads

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    drawing: {
      shapeEdits: function (relayout) {
        const keys = Object.keys(relayout || {});
        if (!keys.some(function (key) { return key === "shapes" || EDIT.test(key); })) {
          return window.dash_clientside.no_update;
        }
        return { relayout: relayout, at: Date.now() };  // `at`: the same shape drawn again is a new edit
      },
    },
  });
})();
