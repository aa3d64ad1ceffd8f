// Clientside links between video players, frame sliders and trajectory plots (no server round trip).
//
// Time <-> frame: frame f is shown from f / fps to (f + 1) / fps. A seek goes to the middle of that span: at
// its start, rounding put the browser on the frame before about one time in three. dash-player's seekTo reads
// values in (0, 1) as a FRACTION of the duration, so a time below one second is sent as time / duration.
(function () {
  "use strict";
  const noUpdate = function () { return window.dash_clientside.no_update; };

  function triggered(id) {
    const ctx = window.dash_clientside.callback_context;
    return (ctx.triggered || []).some(function (t) { return t.prop_id.split(".")[0] === id; });
  }

  function frameOfTime(t, meta) {
    // A small epsilon: a time reported at a frame's very start may be a hair below it.
    const f = Math.floor(t * meta.fps + 1e-3);
    return Math.max(0, Math.min(meta.frame_count - 1, f));
  }

  // Frame 0 at 0 s: there is no frame before it to land on, and 0 goes as seconds, which need no duration (a
  // fraction is dropped while the video's is not known yet).
  function timeOfFrame(frame, meta) { return frame > 0 ? (frame + 0.5) / meta.fps : 0; }

  function seekValue(frame, meta, duration) { return seekTime(timeOfFrame(frame, meta), meta, duration); }

  function seekTime(t, meta, duration) {
    if (t <= 0 || t >= 1) { return t; }
    // The player's duration may still be the previous video's for a moment after its url changed.
    const d = duration && Math.abs(duration - meta.duration) < 0.1 * meta.duration ? duration : meta.duration;
    return d > 0 ? t / d : t;
  }

  function frameOfPoint(clickData) {
    const point = clickData && clickData.points && clickData.points[0];
    if (!point) { return null; }
    if (Array.isArray(point.customdata)) { return Math.round(point.customdata[0]); }
    if (point.z !== undefined) { return Math.round(point.z); }
    return point.x !== undefined ? Math.round(point.x) : null;
  }

  // The run a clicked point belongs to (customdata [frame, run id]); null for charts of one run.
  function runOfPoint(clickData) {
    const point = clickData && clickData.points && clickData.points[0];
    const custom = point && point.customdata;
    return Array.isArray(custom) && typeof custom[1] === "string" ? custom[1] : null;
  }

  function videoOf(playerId) { return document.querySelector("#" + playerId + " video"); }

  // A player switched to another run's video seeks once that video's metadata is in: dash-player's seekTo
  // would land on the old video, or be dropped while the new one has no duration yet.
  function seekOnLoad(playerId, seconds) {
    const video = videoOf(playerId);
    if (!video) { return; }
    video.dataset.pendingSeek = String(seconds);
    if (video.dataset.seekOnLoad) { return; }
    video.dataset.seekOnLoad = "1";
    const apply = function (event) {
      const pending = video.dataset.pendingSeek;
      if (pending === undefined) { return; }
      delete video.dataset.pendingSeek;
      if (event.type === "loadedmetadata") { video.currentTime = Number(pending); }
    };
    video.addEventListener("loadedmetadata", apply);
    video.addEventListener("error", apply);
  }

  function seekPending(playerId) {
    const video = playerId && videoOf(playerId);
    return !!(video && video.dataset.pendingSeek !== undefined);
  }

  // The component a callback drives through `property`: e.g. its player (seekTo) or its slider (value).
  function outputOfCallback(property) {
    const outputs = window.dash_clientside.callback_context.outputs_list || [];
    const found = outputs.find(function (o) { return o && o.property === property; });
    return found ? found.id : null;
  }

  // A slider moved by the player's time calls back like a slider moved by hand; by then the player has
  // played on, so seeking to the slider's frame would pull it back. Those moves are remembered (the last few:
  // during playback the next frame may be set before the callback of the one before has run), to be told
  // from the user's.
  // A move's callback comes within moments, or never (Dash may skip a value overtaken by the next one): a
  // remembered move is forgotten after ECHO_MS, lest a later move by hand to that frame be taken for it.
  const movedByTime = {};
  const ECHOES = 8;
  const ECHO_MS = 1000;

  function rememberMove(sliderId, frame) {
    const moves = movedByTime[sliderId] || (movedByTime[sliderId] = []);
    moves.push({ frame: frame, at: performance.now() });
    if (moves.length > ECHOES) { moves.shift(); }
  }

  // A seek the user asked for (slider or click), until the player's time reports its frame: a report from
  // before it (dash-player reports every intervalCurrentTime ms) would pull the slider back to the frame the
  // player was on, and a second arrow key pressed quickly would end one frame short.
  const handSeeks = {};  // slider id -> {frame, at}
  const SEEK_MS = 1000;

  function seekByHand(frame) {
    const sliderId = outputOfCallback("value");
    handSeeks[sliderId] = { frame: frame, at: performance.now() };
    // Moves the player's time made before this are moot now; left remembered (one whose callback never came),
    // they would swallow the user's next move to their frame.
    movedByTime[sliderId] = [];
  }

  function followTime(frame, sliderValue) {
    const sliderId = outputOfCallback("value");
    const asked = handSeeks[sliderId];
    if (asked && frame !== asked.frame && performance.now() - asked.at < SEEK_MS) { return noUpdate(); }
    delete handSeeks[sliderId];
    if (frame === sliderValue) { return noUpdate(); }
    rememberMove(sliderId, frame);
    return frame;
  }

  function movedByHand(sliderValue) {
    const moves = movedByTime[outputOfCallback("value")] || [];
    const now = performance.now();
    const i = moves.findIndex(function (m) { return m.frame === sliderValue && now - m.at < ECHO_MS; });
    moves.splice(0, i < 0 ? moves.length : i + 1);
    return i < 0;
  }

  // While a video plays, its slider follows it frame by frame from requestAnimationFrame (dash-player reports
  // its time only every intervalCurrentTime ms, and each report is a callback). syncPlayer links a player to
  // its slider and the run's time base: player id -> {slider, meta, value (the slider's, as last seen or set),
  // frame (the last one set)}.
  const links = {};
  const playing = {};  // slider id -> true while its video plays

  function linkOf(video) {
    const id = Object.keys(links).find(function (p) {
      const box = document.getElementById(p);
      return box && box.contains(video);
    });
    return id ? Object.assign({ player: id }, links[id]) : null;
  }

  function setSlider(link, video) {
    const frame = frameOfTime(video.currentTime, link.meta);
    // Not again, nor where the slider is (a seek the slider asked for ends on its own frame).
    if (frame === link.frame || frame === link.value) { return; }
    links[link.player].frame = links[link.player].value = frame;
    rememberMove(link.slider, frame);
    window.dash_clientside.set_props(link.slider, { value: frame });
  }

  function followPlayback(video) {
    if (video.dataset.following) { return; }
    video.dataset.following = "1";
    const step = function () {
      const link = linkOf(video);
      const going = !video.paused && !video.ended;
      if (link && !seekPending(link.player)) {
        if (going) { playing[link.slider] = true; } else { delete playing[link.slider]; }
        setSlider(link, video);
        if (!going) { flushHighlight(link.slider); }
      }
      if (going) { requestAnimationFrame(step); } else { delete video.dataset.following; }
    };
    requestAnimationFrame(step);
  }

  ["play", "seeked", "pause"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (event.target instanceof HTMLVideoElement) { followPlayback(event.target); }
    }, true);
  });

  // Redrawing the 3D scene is the costly part of showing a frame (without a GPU it takes longer than a frame
  // lasts): while a video plays, the panel and label follow it and the highlight waits for the pause.
  const pendingHighlight = {};  // slider id -> [graph id, figure, frame, table, run id]

  function flushHighlight(sliderId) {
    const args = pendingHighlight[sliderId];
    if (!args) { return; }
    delete pendingHighlight[sliderId];
    window.dash_clientside.set_props(args[0], { figure: highlight(args[1], args[2], args[3], args[4]) });
  }

  // The highlighted figure for this frame, or noUpdate while the slider's video plays.
  function highlightNow(figure, frame, table, runId) {
    const sliderId = ((window.dash_clientside.callback_context.inputs_list || [])[0] || {}).id;
    if (!playing[sliderId]) {
      delete pendingHighlight[sliderId];
      return highlight(figure, frame, table, runId);
    }
    pendingHighlight[sliderId] = [outputOfCallback("figure"), figure, frame, table, runId];
    return noUpdate();
  }

  function missing(value) { return value === null || value === undefined || Number.isNaN(value); }

  function fmt(value, digits, unit) {
    return missing(value) ? "–" : Number(value).toFixed(digits) + (unit ? " " + unit : "");
  }

  function component(type, props) { return { type: type, namespace: "dash_html_components", props: props }; }

  // Rows of the per-frame panel: one per object, with area, speed and box on this frame.
  function panel(frame, table, colours) {
    const rows = Object.keys(table || {}).map(function (objectId) {
      const o = table[objectId];
      const i = o.frame.indexOf(frame);
      const visible = i >= 0 && o.visible[i];
      const cells = visible
        ? [fmt(o.area_px[i], 0, "px²"), fmt(o.speed_px_s[i], 1, "px/s"),  // no speed on an object's first frame
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
  function highlight(figure, frame, table, runId) {
    if (!figure || !figure.data || !figure.data.length) { return figure; }
    const x = [], y = [], z = [], customdata = [];
    Object.keys(table || {}).forEach(function (objectId) {
      const o = table[objectId];
      const i = o.frame.indexOf(frame);
      if (i >= 0 && o.visible[i]) { x.push(o.x[i]); y.push(o.y[i]); z.push(frame); customdata.push([frame, runId]); }
    });
    const data = figure.data.slice();
    const last = data.length - 1;
    data[last] = Object.assign({}, data[last], { x: x, y: y, z: z, customdata: customdata });
    return Object.assign({}, figure, { data: data });
  }

  // Videos in an element with data-follows="<leader id>" play from the leader's clock: they play, pause and
  // seek when it does, and drift is taken up by nudging their playback rate, so they never jump while playing
  // unless they are off by more than MAX_DRIFT. Media events do not bubble, so they are caught on the way down.
  const MAX_DRIFT = 0.5;  // seconds
  const DEAD_BAND = 0.02;  // seconds
  const MAX_NUDGE = 0.15;  // of the leader's rate

  function followersOf(leaderVideo) {
    const out = [];
    document.querySelectorAll("[data-follows]").forEach(function (box) {
      const leader = document.getElementById(box.dataset.follows);
      const video = box.querySelector("video");
      if (leader && video && video !== leaderVideo && leader.contains(leaderVideo)) { out.push(video); }
    });
    return out;
  }

  function clampTime(video, t) {
    return video.duration > 0 ? Math.min(t, video.duration) : t;
  }

  function align(leader, follower) {
    follower.playbackRate = leader.playbackRate;
    const target = clampTime(follower, leader.currentTime);
    if (Math.abs(follower.currentTime - target) > 1e-3) { follower.currentTime = target; }
  }

  function nudge(leader, follower) {
    if (follower.duration > 0 && leader.currentTime >= follower.duration) { return; }  // shorter video: at its end
    const drift = follower.currentTime - leader.currentTime;
    if (Math.abs(drift) > MAX_DRIFT) { align(leader, follower); return; }
    const correction = Math.abs(drift) < DEAD_BAND ? 0 : Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, drift));
    follower.playbackRate = leader.playbackRate * (1 - correction);
    if (follower.paused && !follower.ended) { follower.play().catch(function () { /* not loaded yet */ }); }
  }

  const onLeaderEvent = {
    play: function (leader, follower) {
      align(leader, follower);
      follower.play().catch(function () { /* not loaded yet: the next timeupdate retries */ });
    },
    pause: function (leader, follower) { follower.pause(); align(leader, follower); },
    seeking: align,
    ratechange: function (leader, follower) { follower.playbackRate = leader.playbackRate; },
    timeupdate: function (leader, follower) { if (!leader.paused) { nudge(leader, follower); } },
  };

  Object.keys(onLeaderEvent).forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!(event.target instanceof HTMLVideoElement)) { return; }
      followersOf(event.target).forEach(function (follower) { onLeaderEvent[type](event.target, follower); });
    }, true);
  });

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    stcnn: {
      // Inputs: clicks on two plots (3D, and 2D or scores), the slider, the player's time.
      // Outputs: player seekTo, slider value.
      syncPlayer: function (click3d, click2d, sliderValue, currentTime, meta, duration) {
        const fired = (window.dash_clientside.callback_context.triggered || [])[0];
        if (!meta || !fired) { return [noUpdate(), noUpdate()]; }
        const prop = fired.prop_id.split(".").pop();
        const playerId = outputOfCallback("seekTo");
        const link = links[playerId] || (links[playerId] = {});
        link.slider = outputOfCallback("value");
        link.meta = meta;
        link.value = sliderValue;
        if (prop === "clickData") {
          const frame = frameOfPoint(fired.value);
          const run = runOfPoint(fired.value);
          // A point of another run: pickRun switches the player to that run first.
          if (frame === null || (run !== null && run !== meta.run_id)) { return [noUpdate(), noUpdate()]; }
          seekByHand(frame);
          return [seekValue(frame, meta, duration), frame];
        }
        // While another run's video loads, its time says nothing yet: the pending seek puts it on the frame.
        if (seekPending(playerId)) { return [noUpdate(), noUpdate()]; }
        if (prop === "value") {
          const now = currentTime === null || currentTime === undefined ? -1 : frameOfTime(currentTime, meta);
          const seek = movedByHand(sliderValue) && now !== sliderValue;
          if (seek) { seekByHand(sliderValue); }
          return [seek ? seekValue(sliderValue, meta, duration) : noUpdate(), noUpdate()];
        }
        // While playing, followPlayback moves the slider; dash-player's time is a report behind it.
        if (currentTime === null || currentTime === undefined || playing[link.slider]) { return [noUpdate(), noUpdate()]; }
        return [noUpdate(), followTime(frameOfTime(currentTime, meta), sliderValue)];
      },

      // Trajectories: a click on a point of a run other than the one in the small player shows that run there,
      // at that frame (slider range, per-frame panel and label follow). Clicks on the run shown go to syncPlayer.
      // Inputs: clicks on the 3D and 2D plots. States: per run id {meta, frames, url, marks, title}; the meta shown.
      pickRun: function (click3d, click2d, runs, meta) {
        const none = [noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate(), noUpdate()];
        const fired = (window.dash_clientside.callback_context.triggered || [])[0];
        if (!fired || !runs) { return none; }
        const frame = frameOfPoint(fired.value);
        const run = runOfPoint(fired.value);
        if (frame === null || run === null || !runs[run] || (meta && run === meta.run_id)) { return none; }
        const shown = runs[run];
        seekOnLoad("tp-player", timeOfFrame(frame, shown.meta));
        return [shown.url, shown.meta, shown.frames, Math.max(shown.meta.frame_count - 1, 0), shown.marks, frame,
                shown.title];
      },

      // Input: the slider. Outputs: the highlighted 3D figure, the per-frame panel, the frame label.
      showFrame: function (frame, figure, table, meta) {
        if (!meta || frame === null || frame === undefined) { return [noUpdate(), noUpdate(), noUpdate()]; }
        const label = "Frame " + frame + " / " + (meta.frame_count - 1) + " · " + (frame / meta.fps).toFixed(2) + " s";
        return [highlightNow(figure, frame, table, meta.run_id), panel(frame, table, meta.colours || {}), label];
      },

      // Run page: a word when the server has not answered the last few polls (it went away, or the network
      // did); it goes once an answer comes. Inputs: the poll count; States: the count last answered, the period.
      connection: function (n, answered, interval) {
        const behind = (n || 0) - (answered || 0);
        if (behind < 5) { return null; }
        const seconds = Math.round(behind * (interval || 1000) / 1000);
        return component("Div", {
          id: "run-connection-lost", className: "alert alert-warning", role: "alert",
          children: "Lost the connection to the server: no answer for " + seconds + " s. The page keeps " +
            "trying and updates as soon as the server answers; the figures below may be out of date.",
        });
      },

      // Trajectories: as showFrame, also when the small player switched runs at the same frame number.
      showRunFrame: function (frame, table, figure, meta) {
        return window.dash_clientside.stcnn.showFrame(frame, figure, table, meta);
      },

      // Compare view: the slider and plot clicks seek player A, and B follows A (see followLeaders below);
      // the slider follows A's time. Outputs: A's seekTo, the slider.
      syncPair: function (click3d, clickIou, sliderValue, timeA, meta, durationA) {
        const none = [noUpdate(), noUpdate()];
        if (!meta) { return none; }
        let frame = null;
        if (triggered("cmp-3d")) { frame = frameOfPoint(click3d); }
        else if (triggered("cmp-iou")) { frame = frameOfPoint(clickIou); }
        // A point of the following run is a frame at its own rate: the leader goes to the middle of that
        // frame's time, where the follower, on the leader's clock, shows it.
        const fps = triggered("cmp-3d") && (meta.fps_of || {})[runOfPoint(click3d)];
        if (frame !== null && fps && fps !== meta.fps) {
          const t = timeOfFrame(frame, { fps: fps });
          const leaderFrame = frameOfTime(t, meta);
          seekByHand(leaderFrame);
          return [seekTime(t, meta, durationA), leaderFrame];
        }
        if (frame !== null) { seekByHand(frame); return [seekValue(frame, meta, durationA), frame]; }
        if (triggered("cmp-slider")) {
          const now = timeA === null || timeA === undefined ? -1 : frameOfTime(timeA, meta);
          if (!movedByHand(sliderValue) || now === sliderValue) { return none; }
          seekByHand(sliderValue);
          return [seekValue(sliderValue, meta, durationA), noUpdate()];
        }
        if (timeA === null || timeA === undefined) { return none; }
        return [noUpdate(), followTime(frameOfTime(timeA, meta), sliderValue)];
      },
    },
  });
})();
