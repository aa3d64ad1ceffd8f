// The traces the dashboard draws: scatter (in the core), scatter3d (trajectories), image (frames to draw on).
var Plotly = require('plotly.js/lib/core');
Plotly.register([require('plotly.js/lib/scatter3d'), require('plotly.js/lib/image')]);
module.exports = Plotly;
