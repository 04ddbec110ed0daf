// The command dashboard's chart: epidemic curve (stacked bars) with R and its 95 % band, refreshed every 60 s.
(function () {
  "use strict";
  var chart = null;
  function render(el, data) {
    if (!window.echarts) { return; }
    var labels = JSON.parse(el.dataset.labels || "{}");
    var keys = ["confirmed_local", "confirmed_imported", "asymptomatic_local", "asymptomatic_imported"];
    var colors = ["#c62828", "#6a1b9a", "#f29b38", "#7e57c2"];
    var series = keys.map(function (k, i) {
      return { name: labels[k] || k, type: "bar", stack: "cases", data: data.series[k], itemStyle: { color: colors[i] } };
    });
    var legend = keys.map(function (k) { return labels[k] || k; });
    var yAxis = [{ type: "value", name: "", minInterval: 1 }];
    if (data.rt) {
      var n = data.dates.length, mean = new Array(n).fill(null), lo = new Array(n).fill(null), band = new Array(n).fill(null);
      data.rt.t_end.forEach(function (t, i) {  // t_end is 1-based in the series (EpiEstim's convention)
        mean[t - 1] = data.rt.mean[i]; lo[t - 1] = data.rt.lower[i]; band[t - 1] = data.rt.upper[i] - data.rt.lower[i];
      });
      yAxis.push({ type: "value", name: "R", position: "right", min: 0 });
      series.push({ name: "R lo", type: "line", yAxisIndex: 1, data: lo, stack: "r", symbol: "none", lineStyle: { opacity: 0 } });
      series.push({ name: "R 95%", type: "line", yAxisIndex: 1, data: band, stack: "r", symbol: "none", lineStyle: { opacity: 0 }, areaStyle: { color: "#1f5fa8", opacity: 0.15 } });
      series.push({ name: "R", type: "line", yAxisIndex: 1, data: mean, symbol: "none", lineStyle: { color: "#1f5fa8", width: 2 },
        markLine: { silent: true, symbol: "none", data: [{ yAxis: 1 }], lineStyle: { color: "#1f5fa8", type: "dashed" } } });
      legend.push("R");
    }
    chart = chart || window.echarts.init(el);
    chart.setOption({
      animation: false, tooltip: { trigger: "axis" }, legend: { data: legend, top: 0 },
      grid: { left: 40, right: 40, top: 36, bottom: 30 },
      xAxis: { type: "category", data: data.dates.map(function (d) { return d.slice(5); }) },
      yAxis: yAxis, series: series
    }, true);
  }
  var bedChart = null;
  function renderBeds(el, data) {
    if (!window.echarts) { return; }
    var labels = JSON.parse(el.dataset.labels || "{}");
    if (!data.available) { el.textContent = labels.none || data.reason; el.classList.add("muted"); return; }
    var b = data.beds, c = data.cases, x = data.dates.map(function (d) { return d.slice(5); });
    var band = function (s) { return s.upper.map(function (u, i) { return u - s.lower[i]; }); };
    var series = [
      { name: labels.beds, type: "line", data: b.lower, stack: "b", symbol: "none", lineStyle: { opacity: 0 } },
      { name: labels.beds, type: "line", data: band(b), stack: "b", symbol: "none", lineStyle: { opacity: 0 }, areaStyle: { color: "#1f5fa8", opacity: 0.15 } },
      { name: labels.beds, type: "line", data: b.median, lineStyle: { color: "#1f5fa8", width: 2 }, itemStyle: { color: "#1f5fa8" } },
      { name: labels.cases, type: "bar", yAxisIndex: 1, data: c.median, itemStyle: { color: "#c62828", opacity: 0.7 } }
    ];
    if (b.capacity) {
      series[2].markLine = { silent: true, symbol: "none", data: [{ yAxis: b.capacity, name: labels.capacity }],
        lineStyle: { color: "#c62828", type: "dashed" }, label: { formatter: labels.capacity + " {c}" } };
    }
    bedChart = bedChart || window.echarts.init(el);
    bedChart.setOption({
      animation: false, tooltip: { trigger: "axis" }, legend: { data: [labels.beds, labels.cases], top: 0 },
      grid: { left: 50, right: 40, top: 36, bottom: 30 }, xAxis: { type: "category", data: x },
      yAxis: [{ type: "value", min: 0 }, { type: "value", min: 0, position: "right", minInterval: 1 }], series: series
    }, true);
  }
  function fetchJson(el, fn) {
    fetch(el.dataset.url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      el.dataset.loaded = "1";
      fn(el, data);
    });
  }
  function load() {
    var el = document.getElementById("epicurve");
    if (el) { fetchJson(el, render); }
    var beds = document.getElementById("bedforecast");
    if (beds) { fetchJson(beds, renderBeds); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    load();
    setInterval(load, 60000);
    window.addEventListener("resize", function () { if (chart) { chart.resize(); } if (bedChart) { bedChart.resize(); } });
  });
})();
