// Clientside links between video players, frame sliders and trajectory plots (no server round trip).
//
// Time <-> frame: frame f starts at f / fps. dash-player's seekTo reads values in (0, 1) as a FRACTION
// of the duration, so a time below one second is sent as time / duration; 0 and >= 1 are seconds.
(function () {
  "use strict";
  const noUpdate = function () { return window.dash_clientside.no_update; };

  function triggered(id) {
    const ctx = window.dash_clientside.callback_context;
    return (ctx.triggered || []).some(function (t) { return t.prop_id.split(".")[0] === id; });
  }

  function frameOfTime(t, meta) {
    // A small epsilon: after seeking to f / fps the reported time may be a hair below it.
    const f = Math.floor(t * meta.fps + 1e-3);
    return Math.max(0, Math.min(meta.frame_count - 1, f));
  }

  function seekValue(frame, meta, duration) {
    const t = frame / meta.fps;
    if (t <= 0 || t >= 1) { return t; }
    const d = duration || meta.duration;
    return d > 0 ? t / d : t;
  }

  function frameOfPoint(clickData) {
    const point = clickData && clickData.points && clickData.points[0];
    if (!point) { return null; }
    if (Array.isArray(point.customdata)) { return Math.round(point.customdata[0]); }
    if (point.z !== undefined) { return Math.round(point.z); }
    return point.x !== undefined ? Math.round(point.x) : null;
  }

  function fmt(value, digits) {
    return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
  }

  function component(type, props) { return { type: type, namespace: "dash_html_components", props: props }; }

  // Rows of the per-frame panel: one per object, with area, speed and box on this frame.
  function panel(frame, table, colours) {
    const rows = Object.keys(table || {}).map(function (objectId) {
      const o = table[objectId];
      const i = o.frame.indexOf(frame);
      const visible = i >= 0 && o.visible[i];
      const cells = visible
        ? [fmt(o.area_px[i], 0) + " px²", fmt(o.speed_px_s[i], 1) + " px/s",
           "(" + fmt(o.x0[i], 0) + ", " + fmt(o.y0[i], 0) + ") – (" + fmt(o.x1[i], 0) + ", " + fmt(o.y1[i], 0) + ")"]
        : ["not visible", "–", "–"];
      const swatch = component("Span", { className: "swatch", style: { background: colours[objectId] || "#888" } });
      return component("Tr", { children: [
        component("Td", { children: [swatch, "object " + objectId] }),
      ].concat(cells.map(function (c) { return component("Td", { children: c }); })) });
    });
    const head = component("Thead", { children: component("Tr", { children: ["Object", "Area", "Speed", "Box (x0, y0) – (x1, y1)"].map(
      function (h) { return component("Th", { children: h }); }) }) });
    return component("Table", { className: "table table-sm frame-table mb-0", children: [head, component("Tbody", { children: rows })] });
  }

  // Move the last trace of a 3D trajectory figure (the highlight) onto the objects at this frame.
  function highlight(figure, frame, table) {
    if (!figure || !figure.data || !figure.data.length) { return figure; }
    const x = [], y = [], z = [], customdata = [];
    Object.keys(table || {}).forEach(function (objectId) {
      const o = table[objectId];
      const i = o.frame.indexOf(frame);
      if (i >= 0 && o.visible[i]) { x.push(o.x[i]); y.push(o.y[i]); z.push(frame); customdata.push([frame, 0]); }
    });
    const data = figure.data.slice();
    const last = data.length - 1;
    data[last] = Object.assign({}, data[last], { x: x, y: y, z: z, customdata: customdata });
    return Object.assign({}, figure, { data: data });
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    stcnn: {
      // Inputs: clicks on two plots (3D, and 2D or scores), the slider, the player's time.
      // Outputs: player seekTo, slider value.
      syncPlayer: function (click3d, click2d, sliderValue, currentTime, meta, duration) {
        const fired = (window.dash_clientside.callback_context.triggered || [])[0];
        if (!meta || !fired) { return [noUpdate(), noUpdate()]; }
        const prop = fired.prop_id.split(".").pop();
        if (prop === "clickData") {
          const frame = frameOfPoint(fired.value);
          if (frame === null) { return [noUpdate(), noUpdate()]; }
          return [seekValue(frame, meta, duration), frame];
        }
        if (prop === "value") {
          const now = currentTime === null || currentTime === undefined ? -1 : frameOfTime(currentTime, meta);
          return [now === sliderValue ? noUpdate() : seekValue(sliderValue, meta, duration), noUpdate()];
        }
        if (currentTime === null || currentTime === undefined) { return [noUpdate(), noUpdate()]; }
        const frame = frameOfTime(currentTime, meta);
        return [noUpdate(), frame === sliderValue ? noUpdate() : frame];
      },

      // Input: the slider. Outputs: the highlighted 3D figure, the per-frame panel, the frame label.
      showFrame: function (frame, figure, table, meta) {
        if (!meta || frame === null || frame === undefined) { return [noUpdate(), noUpdate(), noUpdate()]; }
        const label = "Frame " + frame + " / " + (meta.frame_count - 1) + " · " + (frame / meta.fps).toFixed(2) + " s";
        return [highlight(figure, frame, table), panel(frame, table, meta.colours || {}), label];
      },

      // Compare view: player A leads; the slider and plot clicks seek both; B follows A's time and play state.
      syncPair: function (clickA, clickB, sliderValue, timeA, playingA, meta, durationA, durationB, timeB) {
        const none = [noUpdate(), noUpdate(), noUpdate(), noUpdate()];
        if (!meta) { return none; }
        let frame = null;
        if (triggered("cmp-3d")) { frame = frameOfPoint(clickA); }
        else if (triggered("cmp-iou")) { frame = frameOfPoint(clickB); }
        if (frame !== null) { return [seekValue(frame, meta, durationA), seekValue(frame, meta, durationB), frame, noUpdate()]; }
        if (triggered("cmp-slider")) {
          const now = timeA === null || timeA === undefined ? -1 : frameOfTime(timeA, meta);
          if (now === sliderValue) { return none; }
          return [seekValue(sliderValue, meta, durationA), seekValue(sliderValue, meta, durationB), noUpdate(), noUpdate()];
        }
        if (triggered("cmp-player-a") && window.dash_clientside.callback_context.triggered[0].prop_id.endsWith("playing")) {
          return [noUpdate(), noUpdate(), noUpdate(), !!playingA];
        }
        if (timeA === null || timeA === undefined) { return none; }
        const current = frameOfTime(timeA, meta);
        const drift = Math.abs((timeB || 0) - timeA);
        const seekB = drift > 0.25 ? (timeA < 1 && timeA > 0 ? timeA / (durationB || meta.duration) : timeA) : noUpdate();
        return [noUpdate(), seekB, current === sliderValue ? noUpdate() : current, noUpdate()];
      },
    },
  });
})();
